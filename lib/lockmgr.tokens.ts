import type { DataSource } from 'typeorm';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { DEFAULT_DATA_SOURCE_NAME as DEFAULT_DATA_SOURCE } from './lockmgr.constants';

/**
 * The name a lock module is known by: its data source's name. An instance is known by the name it was
 * created with (`name` in its options); one without a name is the default data source.
 */
export function lockDataSourceName(dataSource?: string | DataSource): string {
  if (dataSource === undefined) return DEFAULT_DATA_SOURCE;
  if (typeof dataSource === 'string') return dataSource;
  const named = dataSource as { name?: unknown; options?: { name?: unknown } };
  const name = named.name ?? named.options?.name;
  return typeof name === 'string' && name.length > 0 ? name : DEFAULT_DATA_SOURCE;
}

/**
 * The injection token of the `LockService` of the lock module on `dataSource` (a data source's name, or
 * the instance): the `LockService` class itself for the default data source, so that apps with one
 * data source inject `LockService` as usual.
 */
export function getLockServiceToken(dataSource?: string | DataSource): typeof LockService | string {
  const name = lockDataSourceName(dataSource);
  return name === DEFAULT_DATA_SOURCE ? LockService : `${name}LockService`;
}

/** @internal The token of the managers `@WithLock` uses on `dataSource`. */
export function getLockManagersToken(dataSource?: string | DataSource): typeof LockManagers | string {
  const name = lockDataSourceName(dataSource);
  return name === DEFAULT_DATA_SOURCE ? LockManagers : `${name}LockManagers`;
}
