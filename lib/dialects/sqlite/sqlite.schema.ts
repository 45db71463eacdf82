import type { Database } from 'better-sqlite3';
import { checkTableColumns, missingColumns } from '../lock-table-columns';
import type { SchemaDatabase } from '../schema-database';

export interface SqliteNames {
  table: string;
  counter: string;
}

export function sqliteNames(tableName: string): SqliteNames {
  return { table: `"${tableName}"`, counter: `"${tableName}_fencing_token"` };
}

/** The DDL of the lock table, shared by `ensureTable` and the migration; every statement is idempotent. */
export function sqliteSchemaStatements(tableName: string): string[] {
  const { table, counter } = sqliteNames(tableName);
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (
      name varchar(255) PRIMARY KEY NOT NULL,
      locked_by varchar(255) NULL,
      lock_process integer NULL,
      locked_until datetime NULL,
      created_at datetime NOT NULL,
      updated_at datetime NOT NULL,
      owner varchar(36) NOT NULL,
      fencing_token bigint NOT NULL
    )`,
    // A counter, not a per-row value, so tokens keep growing after rows are deleted.
    `CREATE TABLE IF NOT EXISTS ${counter} (last_token bigint NOT NULL)`,
    `INSERT INTO ${counter} (last_token) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM ${counter})`,
  ];
}

/**
 * What the migration's `down` runs: drops the table nestjs-lockmgr created, and leaves any other (SQLite
 * never completes a django-lockmgr table, so a table with our columns is one it created). The counter
 * is kept, so that a later `up` goes on from the last token.
 */
export async function sqliteRevertStatements(tableName: string, database: SchemaDatabase): Promise<string[]> {
  const { table } = sqliteNames(tableName);
  const columns = await database.query<{ name: string }>(`PRAGMA table_info(${table})`);
  return missingColumns(columns.map((column) => column.name)).length === 0 ? [`DROP TABLE ${table}`] : [];
}

/**
 * The lock table's columns, and whether the counter has its row: read without a write lock, so
 * reading waits for no other process's write transaction (the database is in WAL mode).
 */
export function sqliteSchemaState(database: Database, tableName: string) {
  const { table, counter } = sqliteNames(tableName);
  const columns = database.prepare(`PRAGMA table_info(${table})`).all() as { name: string; type: string }[];
  const counterExists = database
    .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`)
    .get(counter.slice(1, -1));
  const counted = counterExists && database.prepare(`SELECT 1 FROM ${counter} LIMIT 1`).get();
  const names = columns.map((column) => column.name);
  return { columns, complete: Boolean(counted) && missingColumns(names).length === 0 };
}

/** Creates what is missing; run in a write transaction, so instances starting together create it once. */
export function completeSqliteSchema(database: Database, tableName: string): void {
  if (!sqliteSchemaState(database, tableName).complete) {
    for (const statement of sqliteSchemaStatements(tableName)) database.exec(statement);
  }
}

/** Checks that the lock table has every column the lock operations use; returns the longest name its `name` column holds. */
export function checkSqliteTable(tableName: string, columns: { name: string; type: string }[]): number {
  checkTableColumns(
    sqliteNames(tableName).table,
    columns.map((column) => column.name),
    'SQLite cannot add them with the defaults that rows inserted by Django would need, so nestjs-lockmgr cannot share this table: use another tableName, or PostgreSQL or MariaDB to share locks with Django.',
  );
  const declared = /\((\d+)\)/.exec(columns.find((column) => column.name === 'name')!.type);
  return declared ? Number(declared[1]) : Number.MAX_SAFE_INTEGER;
}
