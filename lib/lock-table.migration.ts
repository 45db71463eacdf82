import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectEntry, SchemaDatabase } from './dialects/dialect-registry';
import { MAX_TABLE_NAME_LENGTH } from './lockmgr-options';
import { checkIdentifier } from './validation';

export interface LockTableMigrationOptions {
  /** The lock table's name, as given to `LockMgrModule` (default `'lockmgr_lock'`). */
  tableName?: string;
  /** Orders the migration among yours (TypeORM sorts migrations by it). */
  timestamp?: number;
}

async function statementsFor(queryRunner: QueryRunner, create: boolean, tableName: string): Promise<string[]> {
  const entry = dialectEntry(queryRunner.connection.options.type);
  const database: SchemaDatabase = {
    schema: (queryRunner.connection.options as { schema?: string }).schema,
    query: (sql) => queryRunner.query(sql),
  };
  return create ? entry.createStatements(tableName, database) : entry.dropStatements(tableName, database);
}

/**
 * A TypeORM migration that creates the lock table (or completes a django-lockmgr table), for apps that
 * manage their schema with migrations and turn the module's `ensureTable` off. It runs the same
 * statements as `ensureTable`.
 */
export function createLockTableMigration(options: LockTableMigrationOptions = {}): new () => MigrationInterface {
  const tableName = checkIdentifier(options.tableName ?? 'lockmgr_lock', 'createLockTableMigration option tableName', MAX_TABLE_NAME_LENGTH);
  const timestamp = options.timestamp ?? 1764115200000;
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw new RangeError('createLockTableMigration option timestamp must be a positive integer (milliseconds since 1970).');
  }
  const run = async (queryRunner: QueryRunner, create: boolean) => {
    for (const statement of await statementsFor(queryRunner, create, tableName)) await queryRunner.query(statement);
  };
  return class LockTableMigration implements MigrationInterface {
    name = `CreateLockTable${timestamp}`;
    up = (queryRunner: QueryRunner) => run(queryRunner, true);
    down = (queryRunner: QueryRunner) => run(queryRunner, false);
  };
}

/** The migration for the default table name: add it to your data source's `migrations`. */
export const CreateLockTable1764115200000 = createLockTableMigration();
