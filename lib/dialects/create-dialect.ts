import type { DataSource } from 'typeorm';
import type { ResolvedLockMgrOptions } from '../lockmgr-options';
import { dialectEntry } from './dialect-registry';
import type { LockDialect } from './lock-dialect';
import { ReleaseWaiters } from './release-waiters';

/** Picks the dialect of the data source's database. */
export function createDialect(dataSource: DataSource, options: ResolvedLockMgrOptions): LockDialect {
  if (!dataSource?.isInitialized) {
    throw new Error('The data source given to LockMgrModule is not initialized; initialize it (or let TypeOrmModule do it) first.');
  }
  return dialectEntry(dataSource.options.type).create(dataSource, options, new ReleaseWaiters());
}

/** The dialect of the data source, with its lock table created if asked and inspected: ready for lock operations. */
export async function openDialect(dataSource: DataSource, options: ResolvedLockMgrOptions): Promise<LockDialect> {
  const dialect = createDialect(dataSource, options);
  try {
    if (options.ensureTable) await dialect.ensureTable();
    await dialect.inspectTable();
  } catch (error) {
    await dialect.close();
    throw error;
  }
  return dialect;
}
