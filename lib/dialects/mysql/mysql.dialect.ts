import type { Connection, Pool, PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../../lock.entity';
import { deadlockRetry } from '../deadlock-retry';
import { AcquireRequest, AcquireResult, LockDialect, ReleaseRequest, ReleaseWaiting, RenewRequest, SetLocksRequest, SetLocksResult, SetLockStep } from '../lock-dialect';
import { holderOf, LockRow, recordFromRow } from '../lock-row';
import { inLockingOrder, planSetLock } from '../set-lock-plan';
import { ReleaseWaiters } from '../release-waiters';
import type { TransactionOutcome } from '../transaction';
import { watchedWaiting } from '../watched-waiting';
import { createMysqlPool, mysqlConnectionOptions, mysqlTransaction, withMysqlConnection } from './mysql-pool';
import { MysqlReleaseWatcher, ReleaseWatch } from './mysql-release-watcher';
import { DetectedMysqlServer, detectMysqlServer, MysqlServer } from './mysql-server';
import { mysqlStatements, mysqlWatchStatements } from './mysql-statements';
import { ensureMysqlTable, inspectMysqlTable, mysqlNames } from './mysql.schema';

export interface MysqlDialectOptions {
  tableName: string;
  poolSize: number;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
  /** MariaDB: wake waiters in other processes when a lock is released; false: they poll. */
  notify: boolean;
}

type MysqlRow = RowDataPacket & LockRow;

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
  private serverDetection?: Promise<DetectedMysqlServer>;
  /** Set by `inspectTable`, which runs at start-up before any lock operation. */
  private server!: MysqlServer;
  private sql!: ReturnType<typeof mysqlStatements>;
  /** MariaDB, unless waiters are to poll: set by `inspectTable`. */
  private watcher?: MysqlReleaseWatcher;

  constructor(
    private readonly dataSource: DataSource,
    private readonly options: MysqlDialectOptions,
    private readonly waiters: ReleaseWaiters,
  ) {
    this.pool = createMysqlPool(dataSource, options);
  }

  private detectServer(): Promise<DetectedMysqlServer> {
    this.serverDetection ??= detectMysqlServer(async (sql) => (await this.pool.query<RowDataPacket[]>(sql))[0] as { version: string }[]);
    return this.serverDetection;
  }

  async ensureTable(): Promise<void> {
    await ensureMysqlTable(this.pool, this.options.tableName, await this.detectServer());
  }

  async inspectTable(): Promise<void> {
    const detected = await this.detectServer();
    this.server = detected.server;
    this.sql = mysqlStatements(mysqlNames(this.options.tableName), this.server);
    this.maxNameLength = await inspectMysqlTable(this.pool, this.options.tableName, detected);
    if (this.server === 'mariadb' && this.options.notify) {
      this.watcher ??= new MysqlReleaseWatcher({
        statements: mysqlWatchStatements(mysqlNames(this.options.tableName)),
        connect: () => this.connectWatcher(),
        interrupt: (threadId) => this.interrupt(threadId),
        onRelease: (name) => this.waiters.wake(name),
        onGap: () => this.waiters.wakeAll(),
        operationTimeout: this.options.operationTimeout,
      });
    }
  }

  /** The watcher's connection: its own, outside the pool, whose statements have no limit but their lock waits' (it sleeps in them). */
  private async connectWatcher(): Promise<Connection> {
    const { mysql, connection: options } = mysqlConnectionOptions(this.dataSource, this.options);
    const core = mysql.createConnection({ ...options, namedPlaceholders: false });
    // A connection the server dropped fails its next statement; the watcher reconnects then.
    core.on('error', () => undefined);
    const connection = core.promise();
    const seconds = Math.ceil(this.options.operationTimeout);
    try {
      await connection.query(`SET SESSION max_statement_time = 0, innodb_lock_wait_timeout = ${seconds}, lock_wait_timeout = ${seconds}`);
    } catch (error) {
      connection.destroy();
      throw error;
    }
    return connection;
  }

  /** Ends the statement a connection is running (KILL QUERY): how a release wakes another app's watcher. A failure only costs that app a poll. */
  private async interrupt(threadId: number): Promise<void> {
    if (!Number.isSafeInteger(threadId)) return;
    await this.withConnection((connection) => connection.query(`KILL QUERY ${threadId}`)).catch(() => undefined);
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
    const values = { name: request.name, owner: request.owner };
    if (!this.watcher) {
      const [result] = await retryDeadlocks(() => this.withConnection((connection) => connection.execute<ResultSetHeader>(this.sql.release, values)));
      const released = result.affectedRows > 0;
      if (released) this.waiters.wake(request.name);
      return released;
    }
    const [rows] = await retryDeadlocks(() => this.withConnection((connection) => connection.execute<RowDataPacket[]>(this.sql.releaseWatched, values)));
    if (rows.length === 0) return false;
    this.waiters.wake(request.name);
    // This app's own watcher needs no interruption: its waiters were just woken.
    const watcher: string | number | null = rows[0].watcher;
    if (watcher !== null && Number(watcher) !== this.watcher.threadId) await this.interrupt(Number(watcher));
    return true;
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

  /**
   * A short transaction: locks up to `limit` expired rows that no other transaction holds, skipping the
   * others, then deletes those that are still expired. It waits for no row, so an acquirer of a name in
   * the batch waits for it no longer than its two statements take.
   */
  deleteExpired(limit: number): Promise<number> {
    return retryDeadlocks(() =>
      this.transaction(async (connection) => {
        // A string: MySQL refuses LIMIT bound as the DOUBLE that mysql2 sends for a number.
        const [rows] = await connection.execute<RowDataPacket[]>(this.sql.lockExpired, { limit: String(limit) });
        if (rows.length === 0) return { commit: false, result: 0 };
        // A power of two of values (or `limit`), null for the missing: a few statement texts, each prepared once per connection.
        const size = Math.min(limit, 2 ** Math.ceil(Math.log2(rows.length)));
        const names = Array.from({ length: size }, (_, index) => rows[index]?.name ?? null);
        const [deleted] = await connection.execute<ResultSetHeader>(this.sql.deleteLocked(size), names);
        return { commit: true, result: deleted.affectedRows };
      }),
    );
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

  subscribe({ name }: AcquireRequest): ReleaseWaiting {
    const subscription = this.waiters.subscribe(name);
    const watcher = this.watcher;
    if (!watcher) return subscription;
    let watch: ReleaseWatch | undefined;
    return watchedWaiting(subscription, () => (watch ??= watcher.watch(name)).armed(), () => watch?.stop());
  }

  async close(): Promise<void> {
    // First, while the pool can still interrupt its sleep.
    await this.watcher?.close();
    await this.pool.end();
  }

  private transaction<T>(work: (connection: PoolConnection) => Promise<TransactionOutcome<T>>): Promise<T> {
    return mysqlTransaction(this.pool, this.options.operationTimeout, work);
  }

  private withConnection<T>(work: (connection: PoolConnection) => Promise<T>): Promise<T> {
    return withMysqlConnection(this.pool, this.options.operationTimeout, work);
  }
}
