import type { DataSource } from 'typeorm';
import type { ResolvedLockMgrOptions } from '../lockmgr-options';
import type { LockDialect } from './lock-dialect';
import { detectMysqlServer } from './mysql/mysql-server';
import { MysqlDialect } from './mysql/mysql.dialect';
import { mysqlSchemaStatements } from './mysql/mysql.schema';
import { mysqlRevertStatements } from './mysql/mysql-schema-revert';
import { PostgresDialect } from './postgres/postgres.dialect';
import { postgresMigrationStatements, postgresRevertStatements } from './postgres/postgres.schema';
import type { ReleaseWaiters } from './release-waiters';
import type { SchemaDatabase } from './schema-database';
import { SqliteDialect } from './sqlite/sqlite.dialect';
import { sqliteRevertStatements, sqliteSchemaStatements } from './sqlite/sqlite.schema';

/** Everything nestjs-lockmgr does differently on one kind of database. */
export interface DialectEntry {
  /** The lock operations on an initialized data source. */
  create(dataSource: DataSource, options: ResolvedLockMgrOptions, waiters: ReleaseWaiters): LockDialect;
  /** The DDL that creates (or completes) the lock table, the same as `ensureTable` runs; every statement is idempotent. */
  createStatements(tableName: string, database: SchemaDatabase): Promise<string[]>;
  /**
   * The DDL that undoes `createStatements`: drops the table nestjs-lockmgr created, or removes what it
   * added to a django-lockmgr table. Never the fencing-token source, so tokens never start again from 1.
   */
  revertStatements(tableName: string, database: SchemaDatabase): Promise<string[]>;
}

const postgres: DialectEntry = {
  create: (dataSource, options, waiters) => new PostgresDialect(dataSource, options, waiters),
  createStatements: postgresMigrationStatements,
  revertStatements: postgresRevertStatements,
};

/** Both of TypeORM's types reach MySQL or MariaDB, whichever the server is. */
const mysql: DialectEntry = {
  create: (dataSource, options, waiters) => new MysqlDialect(dataSource, options, waiters),
  createStatements: async (tableName, database) => mysqlSchemaStatements(tableName, await detectMysqlServer(database.query)),
  revertStatements: async (tableName, database) => mysqlRevertStatements(tableName, (await detectMysqlServer(database.query)).server, database),
};

const sqlite: DialectEntry = {
  create: (dataSource, options, waiters) => new SqliteDialect(dataSource, options, waiters),
  createStatements: async (tableName) => sqliteSchemaStatements(tableName),
  revertStatements: sqliteRevertStatements,
};

/** The supported values of TypeORM's `DataSourceOptions.type`. */
const DIALECTS = new Map<string, DialectEntry>([
  ['postgres', postgres],
  ['mysql', mysql],
  ['mariadb', mysql],
  ['better-sqlite3', sqlite],
]);

/**
 * The entry of a TypeORM database type (a string, not TypeORM's union: the union differs between
 * TypeORM 0.3 and 1.x). Throws, naming the types that are supported, for any other type.
 */
export function dialectEntry(type: string): DialectEntry {
  const entry = DIALECTS.get(type);
  if (entry) return entry;
  if (type === 'sqlite') {
    throw new Error('nestjs-lockmgr supports SQLite through the better-sqlite3 driver: use type "better-sqlite3" in the data source.');
  }
  const supported = [...DIALECTS.keys()];
  throw new Error(`nestjs-lockmgr does not support the "${type}" database; it supports ${supported.slice(0, -1).join(', ')} and ${supported.at(-1)}.`);
}
