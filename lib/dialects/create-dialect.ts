import type { DataSource } from 'typeorm';
import type { ResolvedLockMgrOptions } from '../lockmgr-options';
import type { LockDialect } from './lock-dialect';
import { MysqlDialect } from './mysql/mysql.dialect';
import { PostgresDialect } from './postgres/postgres.dialect';
import { ReleaseWaiters } from './release-waiters';
import { SqliteDialect } from './sqlite/sqlite.dialect';

/** Picks the dialect of the data source's database. */
export function createDialect(dataSource: DataSource, options: ResolvedLockMgrOptions): LockDialect {
  if (!dataSource?.isInitialized) {
    throw new Error('The data source given to LockMgrModule is not initialized; initialize it (or let TypeOrmModule do it) first.');
  }
  const waiters = new ReleaseWaiters();
  // A string, not TypeORM's union: the union differs between TypeORM 0.3 and 1.x.
  const type: string = dataSource.options.type;
  switch (type) {
    case 'postgres':
      return new PostgresDialect(dataSource, options, waiters);
    case 'mysql':
    case 'mariadb':
      return new MysqlDialect(dataSource, options, waiters);
    case 'better-sqlite3':
      return new SqliteDialect(dataSource, options, waiters);
    case 'sqlite':
      throw new Error('nestjs-lockmgr supports SQLite through the better-sqlite3 driver: use type "better-sqlite3" in the data source.');
    default:
      throw new Error(`nestjs-lockmgr does not support the "${type}" database; it supports postgres, mysql, mariadb and better-sqlite3.`);
  }
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
