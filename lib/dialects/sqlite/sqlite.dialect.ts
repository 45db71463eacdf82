import type { Database, Statement } from 'better-sqlite3';
import { resolve } from 'node:path';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../../lock.entity';
import { AcquireRequest, AcquireResult, LockDialect, ReleaseWaiting, ReleaseRequest, RenewRequest, SetLocksRequest, SetLocksResult, SetLockStep } from '../lock-dialect';
import { LockRow, recordFromRow } from '../lock-row';
import { planSetLock } from '../set-lock-plan';
import { ReleaseWaiters } from '../release-waiters';
import type { TransactionOutcome } from '../transaction';
import { untilLeaseEnds, watchedWaiting } from '../watched-waiting';
import { retryWhileBusy, SQLITE_BUSY_TIMEOUT_MS } from './sqlite-busy';
import { SqliteWalWatcher } from './sqlite-wal-watcher';
import { checkSqliteTable, completeSqliteSchema, SqliteNames, sqliteNames, sqliteSchemaState } from './sqlite.schema';

export interface SqliteDialectOptions {
  tableName: string;
  /** Seconds an operation may wait for other connections' writes to the file to finish. */
  operationTimeout: number;
  /** Wake waiters when other processes write to the file; false: they find releases there by polling. */
  notify: boolean;
}

// Times are stored as TypeORM stores SQLite datetimes: UTC text that sorts like the time it names.
const NOW = `strftime('%Y-%m-%d %H:%M:%f', 'now')`;
const nowPlus = (seconds: string) => `strftime('%Y-%m-%d %H:%M:%f', 'now', printf('%+.3f seconds', ${seconds}))`;
const LIVE = `(locked_until IS NULL OR locked_until > ${NOW})`;
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  (julianday(locked_until) - julianday('now')) * 86400.0 AS seconds_left`;

/** A row as SQLite returns it: times are text. */
interface SqliteRow extends Omit<LockRow, 'locked_until' | 'created_at' | 'updated_at'> {
  locked_until: string | null;
  created_at: string;
  updated_at: string;
}

const toDate = (text: string) => new Date(`${text.replace(' ', 'T')}Z`);

function toRecord(row: SqliteRow): LockRecord {
  return recordFromRow({
    ...row,
    locked_until: row.locked_until === null ? null : toDate(row.locked_until),
    created_at: toDate(row.created_at),
    updated_at: toDate(row.updated_at),
  });
}

/**
 * SQLite through better-sqlite3, for one host: a connection of its own to the app's database file
 * (so no caller transaction on TypeORM's connection can wrap a lock write), and write transactions
 * that SQLite serialises across every process using the file. Waiting for another connection's write
 * never blocks the event loop for more than a few milliseconds: the operation is tried again after a pause.
 */
export class SqliteDialect implements LockDialect {
  maxNameLength = 255;
  readonly announcesReleases = false;
  private readonly database: Database;
  private readonly statements: Record<string, Statement>;
  private walSet = false;
  /** Present unless waiters are to poll. */
  private readonly walWatcher?: SqliteWalWatcher;

  constructor(
    dataSource: DataSource,
    private readonly options: SqliteDialectOptions,
    private readonly waiters: ReleaseWaiters,
  ) {
    const file = (dataSource.options as { database?: string }).database;
    if (!file || file === ':memory:' || file.startsWith('file::memory:')) {
      throw new Error(
        'nestjs-lockmgr needs an SQLite database file: an in-memory database is private to one connection, so its locks could exclude nobody. Point the data source at a file.',
      );
    }
    const driver = dataSource.driver as unknown as { sqlite: new (file: string, options: object) => Database };
    this.database = new driver.sqlite(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    this.statements = {};
    if (options.notify) {
      this.walWatcher = new SqliteWalWatcher(`${resolve(file)}-wal`, (names) => this.freeAmong(names), (name) => waiters.wake(name));
    }
  }

  /**
   * Runs `work` on the connection, again (whole) whenever another connection's lock on the file makes
   * it fail, for up to `operationTimeout`: the one way every operation reaches the file.
   */
  private whenUnlocked<T>(work: () => T): Promise<T> {
    return retryWhileBusy(() => {
      // WAL lets readers run beside the one writer, so processes sharing the file wait less on each other.
      // Switching to it needs the file to itself, so it is done by the first operation, retried like it.
      if (!this.walSet) {
        this.database.pragma('journal_mode = WAL');
        this.walSet = true;
      }
      return work();
    }, this.options.operationTimeout);
  }

  /** Prepares a statement once and keeps it (the table must exist, so this runs lazily). */
  private statement(key: string, sql: () => string): Statement {
    return (this.statements[key] ??= this.database.prepare(sql()));
  }

  private get names(): SqliteNames {
    return sqliteNames(this.options.tableName);
  }

  /**
   * BEGIN IMMEDIATE takes the write lock up front, so the read and the write that follows it see one state.
   * A transaction that meets another connection's lock is rolled back and run again from its BEGIN.
   */
  private transaction<T>(work: () => TransactionOutcome<T>): Promise<T> {
    return this.whenUnlocked(() => {
      this.database.exec('BEGIN IMMEDIATE');
      try {
        const { commit, result } = work();
        this.database.exec(commit ? 'COMMIT' : 'ROLLBACK');
        return result;
      } catch (error) {
        if (this.database.inTransaction) this.database.exec('ROLLBACK');
        throw error;
      }
    });
  }

  /** Creates what is missing; a complete table is only read, so start-up never waits for a writer. */
  async ensureTable(): Promise<void> {
    if ((await this.whenUnlocked(() => sqliteSchemaState(this.database, this.options.tableName))).complete) return;
    await this.transaction(() => {
      completeSqliteSchema(this.database, this.options.tableName);
      return { commit: true, result: undefined };
    });
  }

  async inspectTable(): Promise<void> {
    const { columns } = await this.whenUnlocked(() => sqliteSchemaState(this.database, this.options.tableName));
    this.maxNameLength = checkSqliteTable(this.options.tableName, columns);
  }

  private findLive(name: string): SqliteRow | undefined {
    const { table } = this.names;
    return this.statement('find', () => `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = ? AND ${LIVE}`).get(name) as
      | SqliteRow
      | undefined;
  }

  /** Writes a new lock over a free or expired name; the caller holds the write lock and checked the name is free. */
  private insert(request: AcquireRequest): LockRecord {
    const { table, counter } = this.names;
    // Drawn inside the write transaction, after the name was found free: no other grant can come between.
    const { last_token } = this.statement('draw', () => `UPDATE ${counter} SET last_token = last_token + 1 RETURNING last_token`).get() as {
      last_token: number;
    };
    const row = this.statement(
      'insert',
      () => `INSERT INTO ${table} (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
        VALUES (@name, @owner, @lockedBy, @lockProcess, CASE WHEN @expires IS NULL THEN NULL ELSE ${nowPlus('@expires')} END,
          ${NOW}, ${NOW}, @token)
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_by = excluded.locked_by,
          lock_process = excluded.lock_process, locked_until = excluded.locked_until, created_at = excluded.created_at,
          updated_at = excluded.updated_at, fencing_token = excluded.fencing_token
        RETURNING ${RECORD_COLUMNS}`,
    ).get({ ...request, token: last_token }) as SqliteRow;
    return toRecord(row);
  }

  async acquire(request: AcquireRequest): Promise<AcquireResult> {
    return this.transaction<AcquireResult>(() => {
      const holder = this.findLive(request.name);
      if (holder) {
        const { lockedBy, lockedUntil, secondsLeft } = toRecord(holder);
        return { commit: false, result: { acquired: false, holder: { lockedBy, lockedUntil, secondsLeft } } };
      }
      return { commit: true, result: { acquired: true, lock: this.insert(request) } };
    });
  }

  async release(request: ReleaseRequest): Promise<boolean> {
    const { table } = this.names;
    const rows = (await this.whenUnlocked(() =>
      this.statement(
        'release',
        () => `DELETE FROM ${table} WHERE name = @name AND (@owner IS NULL OR owner = @owner) RETURNING ${LIVE} AS live`,
      ).all(request),
    )) as { live: number }[];
    const released = rows.some((row) => row.live === 1);
    if (released) this.waiters.wake(request.name);
    return released;
  }

  private renewNow(request: RenewRequest): LockRecord | null {
    const { table } = this.names;
    const row = this.statement(
      'renew',
      () => `UPDATE ${table} SET
          locked_until = CASE
            WHEN @mode = 'set' THEN CASE WHEN @expires IS NULL THEN NULL ELSE ${nowPlus('@expires')} END
            WHEN locked_until IS NULL OR @expires IS NULL THEN NULL
            WHEN @mode = 'add' THEN strftime('%Y-%m-%d %H:%M:%f', locked_until, printf('%+.3f seconds', @expires))
            ELSE max(locked_until, ${nowPlus('@expires')})
          END,
          updated_at = ${NOW}
        WHERE name = @name AND (@owner IS NULL OR owner = @owner) AND ${LIVE}
        RETURNING ${RECORD_COLUMNS}`,
    ).get(request) as SqliteRow | undefined;
    return row ? toRecord(row) : null;
  }

  async renew(request: RenewRequest): Promise<LockRecord | null> {
    return this.whenUnlocked(() => this.renewNow(request));
  }

  async find(name: string): Promise<LockRecord | null> {
    const row = await this.whenUnlocked(() => this.findLive(name));
    return row ? toRecord(row) : null;
  }

  async list(): Promise<LockRecord[]> {
    const { table } = this.names;
    const rows = (await this.whenUnlocked(() =>
      this.statement('list', () => `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${LIVE} ORDER BY name`).all(),
    )) as SqliteRow[];
    return rows.map(toRecord);
  }

  async deleteExpired(limit: number): Promise<number> {
    const { table } = this.names;
    return this.whenUnlocked(
      () =>
        this.statement(
          'deleteExpired',
          () => `DELETE FROM ${table} WHERE name IN (SELECT name FROM ${table} WHERE locked_until <= ${NOW} LIMIT ?)`,
        ).run(limit).changes,
    );
  }

  async setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.transaction<SetLocksResult>(() => {
      const steps: SetLockStep[] = [];
      for (const lock of request.locks) {
        const row = this.findLive(lock.name);
        const existing = row ? toRecord(row) : null;
        const action = planSetLock(existing, request);
        if (action === 'fail') return { commit: false, result: { conflict: existing! } };
        let result = existing;
        if (action === 'create') result = this.insert(lock);
        if (action === 'extend') result = this.renewNow({ name: lock.name, owner: null, expires: lock.expires, mode: 'extend' });
        steps.push({ name: lock.name, existing, action, lock: result });
      }
      return { commit: true, result: { steps } };
    });
  }

  /**
   * A wait that another process's release ends at once, through the watch on the write-ahead log.
   * The watch starts before the lock is looked at, so a release between the two still wakes it.
   */
  subscribe({ name }: AcquireRequest): ReleaseWaiting {
    const subscription = this.waiters.subscribe(name);
    const watcher = this.walWatcher;
    if (!watcher) return subscription;
    let stopWatching: (() => void) | undefined;
    const announce = async () => {
      stopWatching ??= watcher.watch(name);
      const holder = await this.find(name);
      return holder ? untilLeaseEnds(holder.secondsLeft) : 0;
    };
    return watchedWaiting(subscription, announce, () => stopWatching?.());
  }

  /** The names among `names` that no live lock holds. */
  private freeAmong(names: string[]): Promise<string[]> {
    const { table } = this.names;
    return this.whenUnlocked(() =>
      this.statement(
        'freeAmong',
        () => `SELECT waited.value AS name FROM json_each(?) AS waited
          WHERE NOT EXISTS (SELECT 1 FROM ${table} WHERE name = waited.value AND ${LIVE})`,
      )
        .pluck()
        .all(JSON.stringify(names)),
    ) as Promise<string[]>;
  }

  async close(): Promise<void> {
    this.walWatcher?.close();
    this.database.close();
  }
}
