import { Logger } from '@nestjs/common';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { checkTableColumns, missingColumns } from '../lock-table-columns';
import type { MysqlServer } from './mysql-server';

export interface MysqlNames {
  table: string;
  /** MariaDB's source of fencing tokens. */
  sequence: string;
  /** MySQL's source of fencing tokens. */
  counter: string;
  /** The index on `locked_until` that the clean-up finds expired rows by. */
  index: string;
}

/** A name of `mysqlNames` as the catalogs spell it. */
const unquoted = (name: string) => name.slice(1, -1);

export function mysqlNames(tableName: string): MysqlNames {
  return {
    table: `\`${tableName}\``,
    sequence: `\`${tableName}_fencing_token_seq\``,
    counter: `\`${tableName}_fencing_token\``,
    index: `\`${tableName}_locked_until\``,
  };
}

/**
 * The DDL of the lock table, shared by `ensureTable` and the migration; every statement is idempotent.
 * Names are compared byte for byte with no trailing-space padding (`k`, `K` and `k ` are three locks),
 * and times are `datetime(6)` holding UTC, as Django stores them on MySQL.
 *
 * On MariaDB the `ADD COLUMN`s complete a table that django-lockmgr created: rows a Django service
 * inserts without our columns get an owner token and a fencing token (from the same sequence as ours)
 * from the defaults. MySQL has no sequences, so no default could give those rows a fencing token:
 * there the table is created whole, and a Django table is refused at start-up.
 */
export function mysqlSchemaStatements(tableName: string, server: MysqlServer): string[] {
  const { table, sequence, counter } = mysqlNames(tableName);
  const columns = `name varchar(255) NOT NULL PRIMARY KEY,
      locked_by varchar(255) NULL,
      lock_process integer NULL,
      locked_until datetime(6) NULL,
      created_at datetime(6) NOT NULL,
      updated_at datetime(6) NOT NULL`;
  if (server === 'mariadb') {
    return [
      `CREATE SEQUENCE IF NOT EXISTS ${sequence}`,
      `CREATE TABLE IF NOT EXISTS ${table} (${columns}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin`,
      `ALTER TABLE ${table}
        ADD COLUMN IF NOT EXISTS owner varchar(36) NOT NULL DEFAULT (UUID()),
        ADD COLUMN IF NOT EXISTS fencing_token bigint NOT NULL DEFAULT (NEXT VALUE FOR ${sequence})`,
      ...mysqlIndexStatements(tableName, server),
    ];
  }
  return [
    // A counter, not a per-row value, so tokens keep growing after rows are deleted.
    `CREATE TABLE IF NOT EXISTS ${counter} (id tinyint NOT NULL PRIMARY KEY, last_token bigint NOT NULL) ENGINE=InnoDB`,
    `INSERT IGNORE INTO ${counter} (id, last_token) VALUES (1, 0)`,
    `CREATE TABLE IF NOT EXISTS ${table} (${columns},
      owner varchar(36) NOT NULL,
      fencing_token bigint NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_bin`,
    ...mysqlIndexStatements(tableName, server),
  ];
}

/**
 * The index the clean-up finds expired rows by, part of `mysqlSchemaStatements`; on its own, it is what
 * a table of an earlier version lacks. Idempotent: MySQL has no CREATE INDEX IF NOT EXISTS, so there the
 * catalog picks the statement.
 */
function mysqlIndexStatements(tableName: string, server: MysqlServer): string[] {
  const { table, index } = mysqlNames(tableName);
  if (server === 'mariadb') return [`CREATE INDEX IF NOT EXISTS ${index} ON ${table} (locked_until)`];
  return [
    `SET @lockmgr_index = IF(EXISTS(SELECT 1 FROM information_schema.STATISTICS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '${tableName}' AND INDEX_NAME = '${unquoted(index)}'),
      'DO 0', 'CREATE INDEX ${index} ON ${table} (locked_until)')`,
    'PREPARE lockmgr_index FROM @lockmgr_index',
    'EXECUTE lockmgr_index',
    'DEALLOCATE PREPARE lockmgr_index',
  ];
}

/** Drops the table and the token source of either server (`IF EXISTS` skips the other's). */
export function mysqlDropStatements(tableName: string): string[] {
  const { table, sequence, counter } = mysqlNames(tableName);
  return [`DROP TABLE IF EXISTS ${table}, ${sequence}, ${counter}`];
}

/** How long `ensureTable` waits for another instance that is creating the table. */
const SCHEMA_LOCK_SECONDS = 60;

/**
 * What the catalogs say of the lock table, its token source and the clean-up's index; reading them takes
 * no lock that DDL or writes wait for. On MySQL the counter's row is inserted before the lock table is
 * created, so a lock table with our columns has it. `usable`: every lock operation works, the clean-up
 * too (without the index it reads the whole table).
 */
async function schemaState(connection: Pick<Pool, 'execute'>, tableName: string, server: MysqlServer) {
  const { table, sequence, counter, index } = mysqlNames(tableName);
  const [columns] = await connection.execute<RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name, CHARACTER_MAXIMUM_LENGTH AS length FROM information_schema.COLUMNS
      WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table`,
    { table: unquoted(table) },
  );
  const [sources] = await connection.execute<RowDataPacket[]>(
    `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :source`,
    { source: unquoted(server === 'mariadb' ? sequence : counter) },
  );
  const [indexes] = await connection.execute<RowDataPacket[]>(
    `SELECT INDEX_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table AND INDEX_NAME = :index`,
    { table: unquoted(table), index: unquoted(index) },
  );
  const names = columns.map((row) => row.name as string);
  const usable = sources.length > 0 && missingColumns(names).length === 0;
  return { columns, usable, complete: usable && indexes.length > 0 };
}

/** The error of either server when the account lacks a privilege on a table (here, to create the index). */
const ER_TABLEACCESS_DENIED_ERROR = 1142;

/**
 * Creates what is missing. A complete table is only read: DDL on it, even with nothing to add, would
 * wait for the metadata locks of every open transaction that used the table, and need the privileges
 * to alter it.
 */
export async function ensureMysqlTable(pool: Pool, tableName: string, server: MysqlServer): Promise<void> {
  const found = await schemaState(pool, tableName, server);
  if (found.complete) return;
  const connection = await pool.getConnection();
  // GET_LOCK serialises instances starting together: CREATE … IF NOT EXISTS alone can still collide.
  const schemaLock = { name: `lockmgr:${tableName}`, timeout: SCHEMA_LOCK_SECONDS };
  try {
    // Start-up may wait longer than a lock operation (for the instance creating the table, for
    // transactions using it), so this session lifts the operations' statement limits; it is then closed, not pooled.
    await connection.query('SET SESSION innodb_lock_wait_timeout = DEFAULT, lock_wait_timeout = DEFAULT');
    await connection.query('SET SESSION max_statement_time = 0').catch(() => undefined);
    const [[{ got }]] = await connection.execute<RowDataPacket[]>('SELECT GET_LOCK(:name, :timeout) AS got', schemaLock);
    if (got !== 1) {
      throw new Error(`Waited ${SCHEMA_LOCK_SECONDS} seconds for another instance to create the lock table "${tableName}"; it never finished.`);
    }
    try {
      const state = await schemaState(connection, tableName, server);
      if (state.complete) return;
      // A usable table gets only its index: no other DDL, which would need more privileges than INDEX.
      const statements = state.usable ? mysqlIndexStatements(tableName, server) : mysqlSchemaStatements(tableName, server);
      for (const statement of statements) await connection.query(statement);
    } finally {
      await connection.execute('DO RELEASE_LOCK(:name)', schemaLock);
    }
  } catch (error) {
    // A table of an earlier version lacks only the clean-up's index. An account that may not create it
    // keeps every guarantee: the clean-up finds expired rows more slowly.
    if (!found.usable || (error as { errno?: number }).errno !== ER_TABLEACCESS_DENIED_ERROR) throw error;
    new Logger('LockMgrModule').warn(
      `The lock table "${tableName}" has no index on locked_until, and this account may not create it: the clean-up of expired locks ` +
        `reads the whole table to find them. Start once with an account that may, or run the lock table migration (${(error as Error).message}).`,
    );
  } finally {
    connection.destroy();
  }
}

/** Checks that the lock table has every column the lock operations use; resolves the longest name its `name` column holds. */
export async function inspectMysqlTable(pool: Pool, tableName: string, server: MysqlServer): Promise<number> {
  const { columns } = await schemaState(pool, tableName, server);
  // Named as the other databases name it in messages, whatever the SQL quoting.
  checkTableColumns(
    `"${tableName}"`,
    columns.map((row) => row.name),
    server === 'mysql'
      ? 'MySQL has no sequences, so no column default can give the rows Django inserts a fencing token, and nestjs-lockmgr cannot share this table on MySQL: use another tableName, or MariaDB or PostgreSQL to share locks with Django.'
      : undefined,
  );
  return Number(columns.find((row) => row.name === 'name')!.length ?? Number.MAX_SAFE_INTEGER);
}
