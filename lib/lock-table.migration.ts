import type { MigrationInterface, QueryRunner } from 'typeorm';
import { dialectEntry } from './dialects/dialect-registry';
import type { SchemaDatabase } from './dialects/schema-database';
import { DEFAULT_TABLE_NAME, MAX_TABLE_NAME_LENGTH } from './lockmgr-options';
import { checkIdentifier } from './validation';

export interface LockTableMigrationOptions {
  /** The lock table's name, as given to `LockMgrModule` (default `'lockmgr_lock'`). */
  tableName?: string;
  /** Orders the migration among yours (TypeORM sorts migrations by it). */
  timestamp?: number;
}

async function run(queryRunner: QueryRunner, tableName: string, direction: 'up' | 'down'): Promise<void> {
  const entry = dialectEntry(queryRunner.connection.options.type);
  const database: SchemaDatabase = {
    schema: (queryRunner.connection.options as { schema?: string }).schema,
    query: (sql, parameters) => queryRunner.query(sql, parameters),
  };
  const statements = direction === 'up' ? await entry.createStatements(tableName, database) : await entry.revertStatements(tableName, database);
  for (const statement of statements) await queryRunner.query(statement);
}

/**
 * A TypeORM migration that creates the lock table (or completes a django-lockmgr table), for apps that
 * manage their schema with migrations and turn the module's `ensureTable` off. `up` runs the same
 * statements as `ensureTable`.
 *
 * `down` never destroys what others use: it drops the table only if nestjs-lockmgr created it, and from
 * a django-lockmgr table it removes only what nestjs-lockmgr added (its columns, and on PostgreSQL its
 * trigger), leaving Django's columns and rows. It always keeps the fencing-token sequence (counter table
 * on MySQL and SQLite), so the tokens of a table made again by a later `up` go on growing from the last
 * one, as the guarantees promise for the life of the database.
 *
 * TypeORM knows a migration by its name, which is the class's name too: `CreateLockTable<timestamp>`
 * for the default table, `CreateLockTable_<table>_<timestamp>` for another, so that the migrations of
 * two tables never share one.
 */
export function createLockTableMigration(options: LockTableMigrationOptions = {}): new () => MigrationInterface {
  const tableName = checkIdentifier(options.tableName ?? DEFAULT_TABLE_NAME, 'createLockTableMigration option tableName', MAX_TABLE_NAME_LENGTH);
  const timestamp = options.timestamp ?? 1764115200000;
  if (!Number.isSafeInteger(timestamp) || timestamp <= 0) {
    throw new RangeError('createLockTableMigration option timestamp must be a positive integer (milliseconds since 1970).');
  }
  // The default table's migration keeps the name apps have already recorded as run.
  const name = tableName === DEFAULT_TABLE_NAME ? `CreateLockTable${timestamp}` : `CreateLockTable_${tableName}_${timestamp}`;
  const migration = class implements MigrationInterface {
    name = name;
    up = (queryRunner: QueryRunner) => run(queryRunner, tableName, 'up');
    down = (queryRunner: QueryRunner) => run(queryRunner, tableName, 'down');
  };
  return Object.defineProperty(migration, 'name', { value: name });
}

/** The migration for the default table name: add it to your data source's `migrations`. */
export const CreateLockTable1764115200000 = createLockTableMigration();
