import type { SchemaDatabase } from '../schema-database';
import { MYSQL_TABLE_COLLATION, MysqlServer } from './mysql-server';
import { mysqlNames } from './mysql.schema';

/**
 * What the migration's `down` runs: drops the table nestjs-lockmgr created (told by the collation it
 * creates tables with), or removes from a django-lockmgr table (MariaDB only completes one) the
 * columns `owner` and `fencing_token`, leaving Django's columns and rows. The fencing-token sequence
 * (MariaDB) or counter table (MySQL) is always kept, so that a later `up` goes on from the last token.
 */
export async function mysqlRevertStatements(tableName: string, server: MysqlServer, database: SchemaDatabase): Promise<string[]> {
  const { table } = mysqlNames(tableName);
  const [found] = await database.query<{ collation: string }>(
    'SELECT TABLE_COLLATION AS collation FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?',
    [tableName],
  );
  if (!found) return [];
  if (found.collation === MYSQL_TABLE_COLLATION[server]) return [`DROP TABLE ${table}`];
  return server === 'mariadb' ? [`ALTER TABLE ${table} DROP COLUMN IF EXISTS owner, DROP COLUMN IF EXISTS fencing_token`] : [];
}
