/**
 * Preloaded (`node -r`) to make a process see no `@nestjs/terminus`, as in an app that never
 * installed it: resolving the package, or any file in it, fails with MODULE_NOT_FOUND.
 */
const loader = require('node:module') as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
const resolveFilename = loader._resolveFilename;

loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  if (request === '@nestjs/terminus' || request.startsWith('@nestjs/terminus/')) {
    throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
  }
  return resolveFilename.call(this, request, ...rest);
};
