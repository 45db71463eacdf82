import { Logger } from '@nestjs/common';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { checkTableColumns, missingColumns } from '../lock-table-columns';
import { inexactCollationWarning, localTimeWarning, NameColumn } from './django-table-checks';
import { mariadbOwnerDefault, outdatedOwnerDefaultWarning, ownerDefaultOutdated, ownerDefaultStatement } from './mysql-owner-default';
import { DetectedMysqlServer, MYSQL_TABLE_COLLATION, MysqlServer } from './mysql-server';

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
 * and times are `datetime(6)` holding UTC, as Django stores them on MySQL. Given what start-up found
 * (`state`), only the missing parts are returned.
 *
 * On MariaDB the `ADD COLUMN`s complete a table that django-lockmgr created: rows a Django service
 * inserts without our columns get an owner token and a fencing token (from the same sequence as ours)
 * from the defaults. MySQL has no sequences, so no default could give those rows a fencing token:
 * there the table is created whole, and a Django table is refused at start-up.
 */
export function mysqlSchemaStatements(tableName: string, detected: DetectedMysqlServer, state?: MysqlSchemaState): string[] {
  const { table, sequence, counter } = mysqlNames(tableName);
  if (state && mysqlTableComplete(state)) {
    // A table of an earlier version, complete but for the clean-up's index or the random owner default.
    return [
      ...(state.index ? [] : mysqlIndexStatements(tableName, detected.server)),
      ...(ownerDefaultOutdated(detected, state.ownerDefault) ? [ownerDefaultStatement(table)] : []),
    ];
  }
  const columns = `name varchar(255) NOT NULL PRIMARY KEY,
      locked_by varchar(255) NULL,
      lock_process integer NULL,
      locked_until datetime(6) NULL,
      created_at datetime(6) NOT NULL,
      updated_at datetime(6) NOT NULL`;
  if (detected.server === 'mariadb') {
    return [
      `CREATE SEQUENCE IF NOT EXISTS ${sequence}`,
      `CREATE TABLE IF NOT EXISTS ${table} (${columns}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${MYSQL_TABLE_COLLATION.mariadb}`,
      `ALTER TABLE ${table}
        ADD COLUMN IF NOT EXISTS owner varchar(36) NOT NULL DEFAULT ${mariadbOwnerDefault(detected)},
        ADD COLUMN IF NOT EXISTS fencing_token bigint NOT NULL DEFAULT (NEXT VALUE FOR ${sequence})`,
      // The migration, run again, also gives a table of an earlier version the random default.
      ...(!state && detected.randomBytes ? [ownerDefaultStatement(table)] : []),
      ...mysqlIndexStatements(tableName, 'mariadb'),
    ];
  }
  return [
    // A counter, not a per-row value, so tokens keep growing after rows are deleted.
    `CREATE TABLE IF NOT EXISTS ${counter} (id tinyint NOT NULL PRIMARY KEY, last_token bigint NOT NULL) ENGINE=InnoDB`,
    `INSERT IGNORE INTO ${counter} (id, last_token) VALUES (1, 0)`,
    `CREATE TABLE IF NOT EXISTS ${table} (${columns},
      owner varchar(36) NOT NULL,
      fencing_token bigint NOT NULL
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=${MYSQL_TABLE_COLLATION.mysql}`,
    ...mysqlIndexStatements(tableName, 'mysql'),
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

/** How long `ensureTable` waits for another instance that is creating the table. */
const SCHEMA_LOCK_SECONDS = 60;

/** What the catalogs say of the lock table and its token source. */
export interface MysqlSchemaState {
  columns: string[];
  /** The `name` column; undefined when it is missing. */
  name?: NameColumn & { length: number | null };
  /** The default of the `owner` column, as the catalog shows it. */
  ownerDefault?: string | null;
  /** Whether this account sees the sequence (MariaDB) or counter table (MySQL) that tokens are drawn from. */
  tokenSource: boolean;
  /** Whether the table has the index on `locked_until` the clean-up finds expired rows by. */
  index: boolean;
}

/**
 * Whether the table has every column the lock operations use. The token source is created before the
 * columns that draw from it, so a table with our columns has it: an account that cannot see it in the
 * catalog lacks the privileges to use it, which `inspectMysqlTable` reports. It is never created again
 * for such a table either: a new sequence or counter would start below the tokens already granted.
 */
function mysqlTableComplete(state: MysqlSchemaState): boolean {
  return missingColumns(state.columns).length === 0;
}

/** Reads the catalogs, which takes no lock that DDL or writes wait for. */
async function schemaState(connection: Pick<Pool, 'execute'>, tableName: string, server: MysqlServer): Promise<MysqlSchemaState> {
  const { table, sequence, counter, index } = mysqlNames(tableName);
  const [columns] = await connection.execute<RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name, CHARACTER_MAXIMUM_LENGTH AS length, COLUMN_TYPE AS type, COLLATION_NAME AS collation,
        COLUMN_DEFAULT AS columnDefault
      FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table`,
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
  const column = (name: string) => columns.find((row) => row.name === name);
  const name = column('name');
  return {
    columns: columns.map((row) => row.name as string),
    name: name && { type: name.type, collation: name.collation, length: name.length },
    ownerDefault: column('owner')?.columnDefault,
    tokenSource: sources.length > 0,
    index: indexes.length > 0,
  };
}

/** The error of either server when the account lacks a privilege on a table (here, ALTER, or INDEX). */
const ER_TABLEACCESS_DENIED_ERROR = 1142;

/**
 * Creates what is missing. A complete table is only read: DDL on it, even with nothing to add, would
 * wait for the metadata locks of every open transaction that used the table, and need the privileges
 * to alter it.
 */
export async function ensureMysqlTable(pool: Pool, tableName: string, detected: DetectedMysqlServer): Promise<void> {
  const found = await schemaState(pool, tableName, detected.server);
  if (mysqlSchemaStatements(tableName, detected, found).length === 0) return;
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
      const state = await schemaState(connection, tableName, detected.server);
      const upgrade = mysqlTableComplete(state);
      for (const statement of mysqlSchemaStatements(tableName, detected, state)) {
        // A table of an earlier version lacks only what this version adds (the random owner default, the
        // clean-up's index). An account that may not add one part may still be allowed the other, and
        // keeps every guarantee either way: `inspectMysqlTable` says what is missing.
        await connection.query(statement).catch((error) => {
          if (!upgrade || (error as { errno?: number }).errno !== ER_TABLEACCESS_DENIED_ERROR) throw error;
        });
      }
    } finally {
      await connection.execute('DO RELEASE_LOCK(:name)', schemaLock);
    }
  } finally {
    connection.destroy();
  }
}

/**
 * Checks that the lock table has every column the lock operations use, and that this account can draw
 * tokens; warns of what works but should be fixed. Resolves the longest name its `name` column holds.
 */
export async function inspectMysqlTable(pool: Pool, tableName: string, detected: DetectedMysqlServer): Promise<number> {
  const { server } = detected;
  const state = await schemaState(pool, tableName, server);
  const { table } = mysqlNames(tableName);
  // Named as the other databases name it in messages, whatever the SQL quoting.
  checkTableColumns(
    `"${tableName}"`,
    state.columns,
    server === 'mysql'
      ? 'MySQL has no sequences, so no column default can give the rows Django inserts a fencing token, and nestjs-lockmgr cannot share this table on MySQL: use another tableName, or MariaDB or PostgreSQL to share locks with Django.'
      : undefined,
  );
  if (!state.tokenSource) throw new Error(tokenSourceMessage(tableName, server));
  const warnings = [
    state.index ? undefined : missingIndexWarning(tableName),
    ownerDefaultOutdated(detected, state.ownerDefault) ? outdatedOwnerDefaultWarning(tableName, table) : undefined,
    inexactCollationWarning(tableName, table, state.name!, server),
    // Django's rows exist only on MariaDB: MySQL refuses its table.
    server === 'mariadb' ? await localTimeWarning(pool, tableName, table) : undefined,
  ];
  for (const warning of warnings) if (warning) new Logger('LockMgrModule').warn(warning);
  return Number(state.name!.length ?? Number.MAX_SAFE_INTEGER);
}

/** An account that may not create the clean-up's index keeps every guarantee: the clean-up finds expired rows more slowly. */
function missingIndexWarning(tableName: string): string {
  return (
    `The lock table "${tableName}" has no index on locked_until, and this account may not create it: the clean-up of expired locks ` +
    'reads the whole table to find them. Start once with an account that may (the INDEX privilege is enough), or run the lock table migration.'
  );
}

/** Why an account that cannot see the token source cannot take locks, and the grants it needs. */
function tokenSourceMessage(tableName: string, server: MysqlServer): string {
  const { sequence, counter } = mysqlNames(tableName);
  const [source, privileges] = server === 'mariadb' ? [`sequence ${sequence}`, 'SELECT, INSERT'] : [`counter table ${counter}`, 'SELECT, UPDATE'];
  return (
    `The lock table "${tableName}" draws its fencing tokens from the ${source}, which this account cannot see: grant it ` +
    `${privileges} on the ${source}, as well as SELECT, INSERT, UPDATE, DELETE on the table. ` +
    `(If it was dropped, it is not created again here: new tokens must stay above the ones in the table.)`
  );
}
