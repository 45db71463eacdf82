import type { Pool as CorePool, PoolOptions } from 'mysql2';
import type { Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../lock.entity';
import { deadlockRetry } from './deadlock-retry';
import { AcquireRequest, AcquireResult, LockDialect, ReleaseRequest, ReleaseWaiting, RenewRequest, SetLocksRequest, SetLocksResult, SetLockStep } from './lock-dialect';
import { holderOf, LockRow, recordFromRow } from './lock-row';
import { checkTableColumns, missingColumns } from './lock-table-columns';
import { inLockingOrder, planSetLock } from './set-lock-plan';
import { ReleaseWaiters } from './release-waiters';
import { inTransaction, TransactionOutcome } from './transaction';

export interface MysqlDialectOptions {
  tableName: string;
  poolSize: number;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
}

/**
 * The two servers behind TypeORM's `mysql` and `mariadb` types. MariaDB (10.5+) has sequences and
 * INSERT … RETURNING, so an acquisition is one statement there; MySQL (8.0.17+) has neither, so it
 * takes a short transaction and draws fencing tokens from a one-row counter table.
 */
export type MysqlServer = 'mariadb' | 'mysql';

/** Which server answered `SELECT VERSION()`, refusing versions that lack what the lock table needs. */
export async function detectMysqlServer(query: (sql: string) => Promise<{ version: string }[]>): Promise<MysqlServer> {
  const [{ version }] = await query('SELECT VERSION() AS version');
  const parts = (/^(\d+)\.(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  const atLeast = (...wanted: number[]) => compare(parts, wanted) >= 0;
  if (/mariadb/i.test(version)) {
    if (!atLeast(10, 5, 0)) throw new Error(`nestjs-lockmgr needs MariaDB 10.5 or later (for sequences and INSERT … RETURNING); the server is ${version}.`);
    return 'mariadb';
  }
  if (!atLeast(8, 0, 17)) throw new Error(`nestjs-lockmgr needs MySQL 8.0.17 or later (for the utf8mb4_0900_bin collation); the server is ${version}.`);
  return 'mysql';
}

/** Negative, zero or positive as `version` is older than, equal to or newer than `wanted`; an unparsed version is older. */
function compare(version: number[], wanted: number[]): number {
  for (let i = 0; i < wanted.length; i++) if ((version[i] ?? -1) !== wanted[i]) return (version[i] ?? -1) - wanted[i];
  return 0;
}

interface MysqlNames {
  table: string;
  /** MariaDB's source of fencing tokens. */
  sequence: string;
  /** MySQL's source of fencing tokens. */
  counter: string;
}

function mysqlNames(tableName: string): MysqlNames {
  return {
    table: `\`${tableName}\``,
    sequence: `\`${tableName}_fencing_token_seq\``,
    counter: `\`${tableName}_fencing_token\``,
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
  ];
}

/** Drops the table and the token source of either server (`IF EXISTS` skips the other's). */
export function mysqlDropStatements(tableName: string): string[] {
  const { table, sequence, counter } = mysqlNames(tableName);
  return [`DROP TABLE IF EXISTS ${table}, ${sequence}, ${counter}`];
}

const NOW = 'UTC_TIMESTAMP(6)';
const EXPIRED = `locked_until <= ${NOW}`;
const LIVE = `(locked_until IS NULL OR locked_until > ${NOW})`;
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  TIMESTAMPDIFF(MICROSECOND, ${NOW}, locked_until) * 1e-6 AS seconds_left`;
/** Leases travel as whole microseconds (null: never expires), so the database adds them to its own clock. */
const nowPlus = (microseconds: string) => `${NOW} + INTERVAL ${microseconds} MICROSECOND`;

type MysqlRow = RowDataPacket & LockRow;

/**
 * Takes `:name` when it is free or expired, in one INSERT … ON DUPLICATE KEY UPDATE: the row is
 * inserted, or locked and taken over, or (held by someone live) locked and left as it is. It never
 * fails on a duplicate key, and it reads nothing first: a SELECT … FOR UPDATE of a missing row takes a
 * gap lock, and two of those deadlock as soon as both insert.
 *
 * Every assignment tests the old `locked_until`, which is why it is assigned last (MariaDB's
 * SIMULTANEOUS_ASSIGNMENT mode reads old values anyway). A never-expiring lock (NULL) is never taken over.
 *
 * With `drawToken` (MariaDB), the statement also draws the fencing token and returns the row. The
 * token cannot come from the VALUES list: that is evaluated before the key is checked, so a token could
 * be drawn, lose a race to an acquisition (and release) of the same name, and be granted after a
 * higher one. So the row is listed twice: the second copy always meets the row the first one inserted
 * or took over, and draws the token there, under its row lock, after the conflict check. Without
 * `drawToken` (MySQL) a taken row gets token 0 until `grant` draws one in the same transaction.
 */
function claimStatement(table: string, drawToken?: string): string {
  const row = `(:name, :owner, :lockedBy, :lockProcess, ${nowPlus(':microseconds')}, ${NOW}, ${NOW}, 0)`;
  const token = drawToken
    ? `IF(${EXPIRED} OR (owner = VALUES(owner) AND fencing_token = 0), ${drawToken}, fencing_token)`
    : `IF(${EXPIRED}, 0, fencing_token)`;
  const takeOver = (column: string) => `${column} = IF(${EXPIRED}, VALUES(${column}), ${column})`;
  return `INSERT INTO ${table} (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
    VALUES ${drawToken ? `${row}, ${row}` : row}
    ON DUPLICATE KEY UPDATE fencing_token = ${token},
      ${['owner', 'locked_by', 'lock_process', 'created_at', 'updated_at', 'locked_until'].map(takeOver).join(', ')}
    ${drawToken ? `RETURNING ${RECORD_COLUMNS}` : ''}`;
}

/** The statements of every operation, built once per table and server. */
function mysqlStatements({ table, sequence, counter }: MysqlNames, server: MysqlServer) {
  return {
    claim: claimStatement(table, server === 'mariadb' ? `NEXT VALUE FOR ${sequence}` : undefined),
    // MySQL only: reading back what the claim did, and drawing and setting the token.
    claimed: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name FOR UPDATE`,
    // LAST_INSERT_ID(expr) hands the new value back in the OK packet, so drawing is one statement.
    drawToken: `UPDATE ${counter} SET last_token = LAST_INSERT_ID(last_token + 1) WHERE id = 1`,
    setToken: `UPDATE ${table} SET fencing_token = :token WHERE name = :name`,
    release: `DELETE FROM ${table} WHERE name = :name AND (:owner IS NULL OR owner = :owner) AND ${LIVE}`,
    // LAST_INSERT_ID(fencing_token) reports which acquisition was renewed, so that the row read back
    // afterwards is that one, not a lock someone took after it was released in between.
    renew: `UPDATE ${table} SET
        locked_until = CASE
          WHEN :mode = 'set' THEN ${nowPlus(':microseconds')}
          WHEN locked_until IS NULL OR :microseconds IS NULL THEN NULL
          WHEN :mode = 'add' THEN locked_until + INTERVAL :microseconds MICROSECOND
          ELSE GREATEST(locked_until, ${nowPlus(':microseconds')})
        END,
        updated_at = ${NOW},
        fencing_token = LAST_INSERT_ID(fencing_token)
      WHERE name = :name AND (:owner IS NULL OR owner = :owner) AND ${LIVE}`,
    renewed: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND fencing_token = :token AND ${LIVE}`,
    find: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND ${LIVE}`,
    findForUpdate: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = :name AND ${LIVE} FOR UPDATE`,
    list: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${LIVE} ORDER BY name`,
    deleteExpired: `DELETE FROM ${table} WHERE ${EXPIRED} LIMIT :limit`,
  };
}

/** How long `ensureTable` waits for another instance that is creating the table. */
const SCHEMA_LOCK_SECONDS = 60;

const ER_LOCK_DEADLOCK = 1213;

/**
 * Runs a write again when InnoDB chose it as a deadlock's victim. Such deadlocks come with the territory:
 * the duplicate-key check of concurrent inserts of one name takes gap locks, even under READ COMMITTED.
 */
const retryDeadlocks = deadlockRetry((error) => (error as { errno?: number }).errno === ER_LOCK_DEADLOCK);

const microseconds = (seconds: number | null) => (seconds === null ? null : Math.round(seconds * 1_000_000));

/**
 * MySQL and MariaDB through mysql2, on a pool of the module's own built from the data source's
 * connection options: a lock operation never waits behind, nor joins, a transaction of the app.
 * Times come from the server's UTC clock with microseconds.
 */
export class MysqlDialect implements LockDialect {
  maxNameLength = 255;
  readonly announcesReleases = false;
  private readonly pool: Pool;
  private readonly names: MysqlNames;
  private serverDetection?: Promise<MysqlServer>;
  /** Set by `inspectTable`, which runs at start-up before any lock operation. */
  private server!: MysqlServer;
  private sql!: ReturnType<typeof mysqlStatements>;

  constructor(
    dataSource: DataSource,
    private readonly options: MysqlDialectOptions,
    private readonly waiters: ReleaseWaiters,
  ) {
    const driver = dataSource.driver as unknown as {
      mysql: { createPool(options: PoolOptions): CorePool };
      options: { replication?: { master: object } };
      createConnectionOptions(options: object, credentials: object): PoolOptions;
    };
    this.names = mysqlNames(options.tableName);
    const core = driver.mysql.createPool({
      ...driver.createConnectionOptions(driver.options, driver.options.replication?.master ?? driver.options),
      connectionLimit: options.poolSize,
      // Connecting gets half the operation's time, so an unreachable server fails an operation within it.
      connectTimeout: Math.ceil((options.operationTimeout * 1000) / 2),
      // The lock operations read rows their own way, whatever the app chose for its pool: times as
      // Dates in UTC, four-byte UTF-8 (emoji in names), values bound by name and never in the SQL text.
      timezone: 'Z',
      dateStrings: false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      charset: 'UTF8MB4_GENERAL_CI',
      namedPlaceholders: true,
      multipleStatements: false,
      enableKeepAlive: true,
    });
    if (typeof core.promise !== 'function') {
      throw new Error(
        'nestjs-lockmgr talks to MySQL and MariaDB through the mysql2 driver, but the data source loaded another one: install mysql2 and set the data source option connectorPackage to "mysql2".',
      );
    }
    core.on('connection', (connection) => {
      // An idle connection the server dropped must not crash the app; the next query reconnects.
      connection.on('error', () => undefined);
      // Without gap locks, a clean-up that scans the table and a locking read of a free name block
      // nobody; every operation is correct under REPEATABLE READ too, only less concurrent.
      connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', () => undefined);
      // The server gives up on a statement when the client does, so a statement the client stopped waiting
      // for cannot commit much later, after its caller was told it failed: lock waits are bounded on both
      // servers, and MariaDB bounds whole statements too (MySQL has no such variable, hence no callback error).
      const seconds = options.operationTimeout;
      connection.query(`SET SESSION innodb_lock_wait_timeout = ${Math.ceil(seconds)}, lock_wait_timeout = ${Math.ceil(seconds)}`, () => undefined);
      connection.query(`SET SESSION max_statement_time = ${seconds}`, () => undefined);
    });
    this.pool = core.promise();
  }

  private detectServer(): Promise<MysqlServer> {
    this.serverDetection ??= detectMysqlServer(async (sql) => (await this.pool.query<RowDataPacket[]>(sql))[0] as { version: string }[]);
    return this.serverDetection;
  }

  /**
   * What the catalogs say of the lock table and its token source; reading them takes no lock that DDL
   * or writes wait for. On MySQL the counter's row is inserted before the lock table is created, so a
   * lock table with our columns has it.
   */
  private async schemaState(connection: Pick<Pool, 'execute'>, server: MysqlServer) {
    const { table, sequence, counter } = mysqlNames(this.options.tableName);
    const unquoted = (name: string) => name.slice(1, -1);
    const [columns] = await connection.execute<RowDataPacket[]>(
      `SELECT COLUMN_NAME AS name, CHARACTER_MAXIMUM_LENGTH AS length FROM information_schema.COLUMNS
        WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :table`,
      { table: unquoted(table) },
    );
    const [sources] = await connection.execute<RowDataPacket[]>(
      `SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :source`,
      { source: unquoted(server === 'mariadb' ? sequence : counter) },
    );
    const names = columns.map((row) => row.name as string);
    return { columns, complete: sources.length > 0 && missingColumns(names).length === 0 };
  }

  /**
   * Creates what is missing. A complete table is only read: DDL on it, even with nothing to add, would
   * wait for the metadata locks of every open transaction that used the table, and need the privileges
   * to alter it.
   */
  async ensureTable(): Promise<void> {
    const server = await this.detectServer();
    if ((await this.schemaState(this.pool, server)).complete) return;
    const connection = await this.pool.getConnection();
    // GET_LOCK serialises instances starting together: CREATE … IF NOT EXISTS alone can still collide.
    const schemaLock = { name: `lockmgr:${this.options.tableName}`, timeout: SCHEMA_LOCK_SECONDS };
    try {
      // Start-up may wait longer than a lock operation (for the instance creating the table, for
      // transactions using it), so this session lifts the operations' statement limits; it is then closed, not pooled.
      await connection.query('SET SESSION innodb_lock_wait_timeout = DEFAULT, lock_wait_timeout = DEFAULT');
      await connection.query('SET SESSION max_statement_time = 0').catch(() => undefined);
      const [[{ got }]] = await connection.execute<RowDataPacket[]>('SELECT GET_LOCK(:name, :timeout) AS got', schemaLock);
      if (got !== 1) {
        throw new Error(`Waited ${SCHEMA_LOCK_SECONDS} seconds for another instance to create the lock table "${this.options.tableName}"; it never finished.`);
      }
      try {
        if ((await this.schemaState(connection, server)).complete) return;
        for (const statement of mysqlSchemaStatements(this.options.tableName, server)) await connection.query(statement);
      } finally {
        await connection.execute('DO RELEASE_LOCK(:name)', schemaLock);
      }
    } finally {
      connection.destroy();
    }
  }

  async inspectTable(): Promise<void> {
    this.server = await this.detectServer();
    this.sql = mysqlStatements(this.names, this.server);
    const { columns } = await this.schemaState(this.pool, this.server);
    // Named as the other databases name it in messages, whatever the SQL quoting.
    checkTableColumns(
      `"${this.options.tableName}"`,
      columns.map((row) => row.name),
      this.server === 'mysql'
        ? 'MySQL has no sequences, so no column default can give the rows Django inserts a fencing token, and nestjs-lockmgr cannot share this table on MySQL: use another tableName, or MariaDB or PostgreSQL to share locks with Django.'
        : undefined,
    );
    this.maxNameLength = Number(columns.find((row) => row.name === 'name')!.length ?? Number.MAX_SAFE_INTEGER);
  }

  acquire(request: AcquireRequest): Promise<AcquireResult> {
    return retryDeadlocks(() => this.acquireOnce(request));
  }

  private acquireOnce(request: AcquireRequest): Promise<AcquireResult> {
    const attempt = async (connection: PoolConnection): Promise<TransactionOutcome<AcquireResult>> => {
      const row = await this.claim(connection, request);
      if (row.owner !== request.owner) return { commit: false, result: { acquired: false, holder: holderOf(row) } };
      return { commit: true, result: { acquired: true, lock: await this.grant(connection, row) } };
    };
    // MariaDB claims in one statement, which needs no transaction around it.
    if (this.server === 'mariadb') return this.withConnection(async (connection) => (await attempt(connection)).result);
    return this.transaction(attempt);
  }

  private claimValues(request: AcquireRequest) {
    const { name, owner, lockedBy, lockProcess, expires } = request;
    return { name, owner, lockedBy, lockProcess, microseconds: microseconds(expires) };
  }

  /**
   * Claims a name, and returns its row as the claim left it: ours if the claim won, else the live
   * holder's. Inside a transaction the row stays locked until it ends. A row we won still needs `grant`.
   */
  private async claim(connection: PoolConnection, request: AcquireRequest): Promise<MysqlRow> {
    if (this.server === 'mariadb') {
      const [rows] = await connection.execute<MysqlRow[]>(this.sql.claim, this.claimValues(request));
      // One row per copy in the VALUES list; the last is the row as the statement left it.
      return rows[rows.length - 1];
    }
    await connection.execute(this.sql.claim, this.claimValues(request));
    const [rows] = await connection.execute<MysqlRow[]>(this.sql.claimed, { name: request.name });
    return rows[0];
  }

  /** The lock a claim won. On MySQL its fencing token is drawn now, with the row ours and locked; MariaDB's claim drew it. */
  private async grant(connection: PoolConnection, row: MysqlRow): Promise<LockRecord> {
    if (this.server === 'mariadb') return recordFromRow(row);
    const [drawn] = await connection.execute<ResultSetHeader>(this.sql.drawToken);
    const token = Number(drawn.insertId);
    await connection.execute(this.sql.setToken, { name: row.name, token });
    return { ...recordFromRow(row), fencingToken: token };
  }

  async release(request: ReleaseRequest): Promise<boolean> {
    const [result] = await retryDeadlocks(() =>
      this.withConnection((connection) =>
        connection.execute<ResultSetHeader>(this.sql.release, { name: request.name, owner: request.owner }),
      ),
    );
    const released = result.affectedRows > 0;
    if (released) this.waiters.wake(request.name);
    return released;
  }

  renew(request: RenewRequest): Promise<LockRecord | null> {
    return retryDeadlocks(() => this.withConnection((connection) => this.renewWith(connection, request)));
  }

  private async renewWith(connection: PoolConnection, request: RenewRequest): Promise<LockRecord | null> {
    const { name, owner, mode, expires } = request;
    const [result] = await connection.execute<ResultSetHeader>(this.sql.renew, { name, owner, mode, microseconds: microseconds(expires) });
    if (result.affectedRows === 0) return null;
    const [rows] = await connection.execute<MysqlRow[]>(this.sql.renewed, { name, token: result.insertId });
    return rows.length ? recordFromRow(rows[0]) : null;
  }

  async find(name: string): Promise<LockRecord | null> {
    const [rows] = await this.withConnection((connection) => connection.execute<MysqlRow[]>(this.sql.find, { name }));
    return rows.length ? recordFromRow(rows[0]) : null;
  }

  async list(): Promise<LockRecord[]> {
    const [rows] = await this.withConnection((connection) => connection.execute<MysqlRow[]>(this.sql.list));
    return rows.map(recordFromRow);
  }

  async deleteExpired(limit: number): Promise<number> {
    // A string: MySQL refuses LIMIT bound as the DOUBLE that mysql2 sends for a number.
    const [result] = await retryDeadlocks(() =>
      this.withConnection((connection) => connection.execute<ResultSetHeader>(this.sql.deleteExpired, { limit: String(limit) })),
    );
    return result.affectedRows;
  }

  setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return retryDeadlocks(() => this.setLocksOnce(request));
  }

  private setLocksOnce(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.transaction<SetLocksResult>(async (connection) => {
      const steps = new Map<string, SetLockStep>();
      const claimed: { name: string; row: MysqlRow }[] = [];
      for (const lock of inLockingOrder(request.locks)) {
        let existing: LockRecord | null;
        if (request.create) {
          const row = await this.claim(connection, lock);
          existing = row.owner === lock.owner ? null : recordFromRow(row);
          if (!existing) claimed.push({ name: lock.name, row });
        } else {
          const [rows] = await connection.execute<MysqlRow[]>(this.sql.findForUpdate, { name: lock.name });
          existing = rows.length ? recordFromRow(rows[0]) : null;
        }
        const action = planSetLock(existing, request);
        if (action === 'fail') return { commit: false, result: { conflict: existing! } };
        const result =
          action === 'extend'
            ? await this.renewWith(connection, { name: lock.name, owner: null, expires: lock.expires, mode: 'extend' })
            : existing;
        steps.set(lock.name, { name: lock.name, existing, action, lock: result });
      }
      // Tokens are drawn once every name is locked: the counter row (MySQL) is then always locked
      // after the lock rows, in every transaction, so acquisitions and setLock calls cannot deadlock on it.
      for (const { name, row } of claimed) steps.get(name)!.lock = await this.grant(connection, row);
      return { commit: true, result: { steps: request.locks.map((lock) => steps.get(lock.name)!) } };
    });
  }

  subscribe(name: string): ReleaseWaiting {
    return this.waiters.subscribe(name);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Runs `work` in a transaction on a connection of the pool, and commits only if it asks to. */
  private transaction<T>(work: (connection: PoolConnection) => Promise<TransactionOutcome<T>>): Promise<T> {
    return this.withConnection((connection) =>
      inTransaction(
        {
          begin: () => connection.beginTransaction(),
          commit: () => connection.commit(),
          rollback: () => connection.rollback(),
          // A connection that could not even roll back is closed; `withConnection` gives back the others.
          release: (broken) => broken && connection.destroy(),
        },
        () => work(connection),
      ),
    );
  }

  /**
   * Runs `work` on a connection of the pool, failing it once the operation timeout has passed,
   * waiting for a connection included. A connection still busy then is closed, not given back: a
   * server that stopped answering may still answer late, and that answer must reach no other operation.
   */
  private async withConnection<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    const seconds = this.options.operationTimeout;
    let connection: PoolConnection | undefined;
    let overran = false;
    let timer: NodeJS.Timeout | undefined;
    const operation = (async () => {
      connection = await this.pool.getConnection();
      if (overran) return connection.release();
      try {
        return await work(connection);
      } finally {
        // Gives a connection back to the pool unless it was closed meanwhile (then this does nothing).
        connection.release();
      }
    })();
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        overran = true;
        connection?.destroy();
        reject(new Error(`The database did not answer within ${seconds} seconds (the operationTimeout option).`));
      }, seconds * 1000);
    });
    // Once the deadline has passed, how the operation ends no longer matters.
    operation.catch(() => undefined);
    try {
      return (await Promise.race([operation, deadline])) as T;
    } finally {
      clearTimeout(timer);
    }
  }
}
