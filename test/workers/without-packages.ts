/**
 * Preloaded (`node -r`) to make a process see none of the packages named, comma-separated, in
 * LOCKMGR_HIDDEN_PACKAGES, as in an app that never installed them: resolving a package, or any file
 * in it, fails with MODULE_NOT_FOUND.
 */
const hidden = (process.env.LOCKMGR_HIDDEN_PACKAGES ?? '').split(',').filter((name) => name.length > 0);
const loader = require('node:module') as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
const resolveFilename = loader._resolveFilename;

loader._resolveFilename = function (this: unknown, request: string, ...rest: unknown[]): string {
  if (hidden.some((name) => request === name || request.startsWith(`${name}/`))) {
    throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
  }
  return resolveFilename.call(this, request, ...rest);
};
