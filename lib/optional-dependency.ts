import { createRequire } from 'node:module';

/**
 * Loads a peer dependency (`@nestjs/schedule`, `@nestjs/terminus`, `@nestjs/typeorm`) when it is first needed,
 * so that an app that did not install it can still load nestjs-lockmgr. Undefined when it is not installed.
 */
export function loadOptionalDependency<T>(name: string): T | undefined {
  return unlessMissing(() => require(name) as T);
}

/**
 * Loads `name` as the optional peer `peer` sees it: a dependency of that peer (`cron`, which
 * `@nestjs/schedule` depends on), out of nestjs-lockmgr's own reach under package managers that do not
 * hoist dependencies. It is the very copy the peer uses. Undefined when either is not installed.
 */
export function loadDependencyOf<T>(peer: string, name: string): T | undefined {
  return unlessMissing(() => createRequire(require.resolve(peer))(name) as T);
}

function unlessMissing<T>(load: () => T): T | undefined {
  try {
    return load();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw error;
  }
}

/** A peer dependency that must be there, since what needs it came from it (a handler of its transport). */
export function requireOptionalDependency<T>(name: string, purpose: string): T {
  const loaded = loadOptionalDependency<T>(name);
  if (!loaded) throw new Error(`nestjs-lockmgr needs ${name} ${purpose}, and it is not installed.`);
  return loaded;
}
