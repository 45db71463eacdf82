import type { DataSource } from 'typeorm';
import { createLockTableMigration } from '../../lib';
import { mysqlNames } from '../../lib/dialects/mysql/mysql.schema';
import { postgresNames } from '../../lib/dialects/postgres/postgres-names';
import { sqliteNames } from '../../lib/dialects/sqlite/sqlite.schema';

/** The fencing-token source of the lock table `tableName`, which the migration's `down` keeps. */
function tokenSourceDrop(dataSource: DataSource, tableName: string): string {
  const { type } = dataSource.options;
  if (type === 'postgres') return `DROP SEQUENCE IF EXISTS ${postgresNames(tableName, dataSource.options.schema).sequence}`;
  if (type === 'better-sqlite3') return `DROP TABLE IF EXISTS ${sqliteNames(tableName).counter}`;
  // MariaDB drops a sequence with DROP TABLE too; IF EXISTS skips the other server's source.
  const { sequence, counter } = mysqlNames(tableName);
  return `DROP TABLE IF EXISTS ${sequence}, ${counter}`;
}

/**
 * Removes a lock table and everything made with it: the migration's `down`, then the fencing-token
 * source it keeps for the app's sake, so that test and bench runs leave the servers as they found them.
 */
export async function removeLockTable(dataSource: DataSource, tableName: string): Promise<void> {
  const queryRunner = dataSource.createQueryRunner();
  try {
    await new (createLockTableMigration({ tableName }))().down(queryRunner);
    await queryRunner.query(tokenSourceDrop(dataSource, tableName));
  } finally {
    await queryRunner.release();
  }
}
