import { Logger } from '@nestjs/common';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../lock.entity';
import { deadlockRetry } from './deadlock-retry';
import { AcquireRequest, AcquireResult, HolderInfo, LockDialect, ReleaseWaiting, ReleaseRequest, RenewRequest, SetLocksRequest, SetLocksResult, SetLockStep } from './lock-dialect';
import { holderOf, recordFromRow } from './lock-row';
import { checkTableColumns } from './lock-table-columns';
import { inLockingOrder, planSetLock } from './set-lock-plan';
import { PostgresListener } from './postgres-listener';
import {
  advisoryClassId,
  POSTGRES_SCHEMA_STATE,
  postgresNames,
  PostgresNames,
  postgresSchemaComplete,
  PostgresSchemaState,
  postgresSchemaStatements,
  postgresSchemaStateValues,
  postgresTableComplete,
} from './postgres-schema';
import { ReleaseWaiters } from './release-waiters';
import { inTransaction, TransactionOutcome } from './transaction';

export interface PostgresDialectOptions {
  tableName: string;
  poolSize: number;
  /** Announce releases with NOTIFY to waiters LISTENing in other processes. */
  notify: boolean;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
}

type Executor = Pick<Pool, 'query'> | PoolClient;

const LIVE = '(locked_until IS NULL OR locked_until > clock_timestamp())';
const RECORD_COLUMNS = `name, owner, fencing_token, locked_by, lock_process, locked_until, created_at, updated_at,
  EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left`;

/** The statements of every operation, built once per table. */
function postgresStatements({ table, sequence }: PostgresNames) {
  return {
    // The advisory lock on the name is taken before the fencing token is drawn, and is held to commit:
    // no other acquisition of the name can draw a token and be granted in between, so tokens of a
    // name grow in the order its acquisitions are granted, even when a row is inserted afresh.
    // A name seen held is left alone before any lock is taken, so a failed attempt only reads: it
    // takes no row lock (which would hold up the holder's release) and commits nothing.
    acquire: `WITH acquired AS (
        INSERT INTO ${table} AS held (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
        SELECT $1::varchar, $2::varchar, $3::varchar, $4::int, clock.at + $5::float8 * interval '1 second',
          clock.at, clock.at, nextval('${sequence}')
        FROM (
          SELECT pg_advisory_xact_lock($6::int, hashtext($1::varchar)), clock_timestamp() AS at
          WHERE NOT EXISTS (SELECT FROM ${table} WHERE name = $1 AND ${LIVE})
          OFFSET 0
        ) AS clock
        ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_by = excluded.locked_by,
          lock_process = excluded.lock_process, locked_until = excluded.locked_until,
          created_at = excluded.created_at, updated_at = excluded.updated_at, fencing_token = excluded.fencing_token,
          waiting = false
        WHERE held.locked_until <= excluded.created_at
        RETURNING fencing_token, created_at, locked_until
      )
      SELECT true AS acquired, fencing_token, created_at, locked_until, NULL AS locked_by, NULL::float8 AS seconds_left
      FROM acquired
      UNION ALL
      SELECT false, NULL, NULL, locked_until, locked_by, EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8
      FROM ${table} WHERE name = $1 AND NOT EXISTS (SELECT FROM acquired)`,
    // NOTIFY only when a waiter flagged the row: PostgreSQL serialises the commits of notifying
    // transactions, so a release that always notified would lose much of its throughput.
    // A release does not wait for its commit to reach the disk (synchronous_commit off, for this
    // statement only): if the database crashed before the flush, the lock would stay held until its
    // lease ended, which delays others but never lets two hold it. The next acquisition's durable
    // commit flushes the release with it, since the log is written in order.
    release: `WITH released AS (
        DELETE FROM ${table} WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2) RETURNING locked_until, waiting
      ), notified AS (
        SELECT pg_notify($3::text, $1) FROM released WHERE waiting AND $3 IS NOT NULL
      )
      SELECT count(*) FILTER (WHERE ${LIVE})::int AS released, (SELECT count(*) FROM notified) AS notified,
        set_config('synchronous_commit', 'off', true) AS synchronous_commit
      FROM released`,
    // Only the first waiter writes the flag; the others read, so a crowd of waiters costs no commits.
    // Losing a flag in a crash only costs a NOTIFY (the waiter still polls), so it does not wait for the disk.
    // The waiter already LISTENs. It gets a row (the lease to sleep on) only when the release of the row
    // is sure to notify; otherwise no row, and it tries again at once. Every interleaving:
    // - It flagged the row: the UPDATE ran on the newest version, after a renewal or a release in flight
    //   had committed, so a later release reads the flag; a takeover only comes once the lease it reports ends.
    // - It flagged nothing, but its snapshot shows the live row flagged: a flag stays until the row is
    //   deleted (that release notifies, and commits after the snapshot, so after the LISTEN) or taken over
    //   (once the reported lease has ended, when the waiter wakes anyway; a renewal only makes it wake early).
    // - Otherwise the row was gone or expired in its snapshot, or changed after it: a release in flight
    //   deleted it before reading any flag (so it notifies nobody), or another waiter flagged it first.
    markWaiting: `WITH flagged AS (
        UPDATE ${table} SET waiting = true WHERE name = $1::varchar AND ${LIVE} AND NOT waiting
        RETURNING EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left
      )
      SELECT seconds_left, set_config('synchronous_commit', 'off', true) AS synchronous_commit FROM flagged
      UNION ALL
      SELECT EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8, NULL
      FROM ${table} WHERE name = $1 AND ${LIVE} AND waiting AND NOT EXISTS (SELECT FROM flagged)`,
    renew: `UPDATE ${table} AS held SET
        locked_until = CASE
          WHEN $3::text = 'set' THEN clock_timestamp() + $4::float8 * interval '1 second'
          WHEN held.locked_until IS NULL OR $4 IS NULL THEN NULL
          WHEN $3 = 'add' THEN held.locked_until + $4 * interval '1 second'
          ELSE greatest(held.locked_until, clock_timestamp() + $4 * interval '1 second')
        END,
        updated_at = clock_timestamp()
      WHERE name = $1::varchar AND ($2::varchar IS NULL OR owner = $2) AND ${LIVE}
      RETURNING ${RECORD_COLUMNS}`,
    find: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = $1::varchar AND ${LIVE}`,
    findForUpdate: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE name = $1::varchar AND ${LIVE} FOR UPDATE`,
    list: `SELECT ${RECORD_COLUMNS} FROM ${table} WHERE ${LIVE} ORDER BY name`,
    deleteExpired: `DELETE FROM ${table} WHERE name IN (
        SELECT name FROM ${table} WHERE locked_until <= clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED
      ) AND locked_until <= clock_timestamp()`,
    // In the order of their keys, not of the names: two calls with names whose 32-bit keys collide would
    // otherwise take them in opposite orders. PostgreSQL calls the volatile lock function after the sort.
    lockNames: `SELECT pg_advisory_xact_lock($1::int, key)
      FROM (SELECT DISTINCT hashtext(name) AS key FROM unnest($2::varchar[]) AS name) AS keys ORDER BY key`,
    lockTable: `SELECT pg_advisory_xact_lock($1::int, 0)`,
    schemaState: POSTGRES_SCHEMA_STATE,
  };
}

/** Attempts, in all, of an acquisition that keeps meeting a holder its snapshot does not show (see `acquire`). */
const ACQUIRE_ATTEMPTS = 3;

/** Whether a failed acquisition's holder still holds the lock by the database's clock, as it read it. */
function isLive(holder: HolderInfo | null): boolean {
  return holder !== null && (holder.secondsLeft === null || holder.secondsLeft > 0);
}

const DEADLOCK_DETECTED = '40P01';
const INSUFFICIENT_PRIVILEGE = '42501';
const retryDeadlocks = deadlockRetry((error) => (error as { code?: string }).code === DEADLOCK_DETECTED);

/**
 * PostgreSQL: every operation is one prepared statement on a pool of its own, so it is one round trip,
 * never waits behind the app's transactions, and never joins one.
 */
export class PostgresDialect implements LockDialect {
  maxNameLength = 255;
  private readonly logger = new Logger('LockMgrModule');
  private readonly pool: Pool;
  private readonly names: PostgresNames;
  private readonly schema?: string;
  private readonly advisoryClass: number;
  private readonly sql: ReturnType<typeof postgresStatements>;
  /** Present when releases are announced with NOTIFY. */
  private readonly listener?: PostgresListener;

  constructor(
    dataSource: DataSource,
    private readonly options: PostgresDialectOptions,
    private readonly waiters: ReleaseWaiters,
  ) {
    const driver = dataSource.driver as unknown as { master: Pool & { options: PoolConfig }; postgres: typeof import('pg') };
    this.schema = (dataSource.options as { schema?: string }).schema;
    this.names = postgresNames(options.tableName, this.schema);
    this.advisoryClass = advisoryClassId(this.names.table);
    this.sql = postgresStatements(this.names);
    // A pool of our own, with the app's connection settings: a lock operation must not queue behind, or
    // deadlock with, app transactions that hold every connection of the app's pool while they wait for a lock.
    // Connecting and answering each get half the operation's time, so an unreachable or frozen
    // database fails an operation within it instead of hanging.
    // The server gives up on a statement when the client does (statement_timeout), so a statement the
    // client stopped waiting for cannot commit much later, after its caller was told it failed.
    const halfTimeout = Math.ceil((options.operationTimeout * 1000) / 2);
    const connection: PoolConfig = {
      ...driver.master.options,
      connectionTimeoutMillis: halfTimeout,
      query_timeout: halfTimeout,
      statement_timeout: halfTimeout,
      keepAlive: true,
    };
    this.pool = new driver.postgres.Pool({ ...connection, max: options.poolSize });
    // An idle connection the server dropped must not crash the app; the next query reconnects.
    this.pool.on('error', () => undefined);
    if (options.notify) {
      this.listener = new PostgresListener(
        (config) => new driver.postgres.Client(config),
        { ...connection, application_name: 'nestjs-lockmgr listener' },
        this.channel,
        (name) => waiters.wake(name),
        () => waiters.wakeAll(),
      );
    }
  }

  get announcesReleases(): boolean {
    return this.listener !== undefined;
  }

  /** The NOTIFY channel of this table's releases. */
  private get channel(): string {
    return this.options.tableName;
  }

  /** Runs a prepared statement: PostgreSQL parses and plans it once per connection. */
  private async run(executor: Executor, name: keyof ReturnType<typeof postgresStatements>, values: unknown[]) {
    return executor.query({ name: `lockmgr:${this.options.tableName}:${name}`, text: this.sql[name], values });
  }

  /** What the catalogs say of the lock table; reading them locks nothing. */
  private async schemaState(executor: Executor): Promise<PostgresSchemaState> {
    const { rows } = await this.run(executor, 'schemaState', postgresSchemaStateValues(this.options.tableName, this.schema));
    return { columns: rows[0].columns, nameLength: rows[0].name_length, sequence: rows[0].sequence, trigger: rows[0].trigger };
  }

  /**
   * Creates only what is missing. A complete table is only read: DDL would take an ACCESS EXCLUSIVE lock
   * (waiting behind every transaction on the table) and need its ownership, even with nothing to add.
   */
  async ensureTable(): Promise<void> {
    const found = await this.schemaState(this.pool);
    if (postgresSchemaComplete(found)) return;
    try {
      await this.transaction(async (client) => {
        // Serialises instances starting together: CREATE … IF NOT EXISTS alone can still collide.
        await this.run(client, 'lockTable', [this.advisoryClass]);
        const state = await this.schemaState(client);
        for (const statement of postgresSchemaStatements(this.options.tableName, this.schema, state)) await client.query(statement);
        return { commit: true, result: undefined };
      });
    } catch (error) {
      // A table made by an earlier version lacks only the trigger that orders Django's tokens. An account
      // that may not add it (it does not own the table) still gets every guarantee among Nest instances.
      if (!postgresTableComplete(found) || (error as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw error;
      this.logger.warn(
        `The lock table ${this.names.table} lacks the trigger that keeps fencing tokens of rows inserted by django-lockmgr in grant order, ` +
          `and this account may not add it: start once with the table's owner, or run the lock table migration (${(error as Error).message}).`,
      );
    }
  }

  async inspectTable(): Promise<void> {
    const { columns, nameLength } = await this.schemaState(this.pool);
    checkTableColumns(this.names.table, columns);
    this.maxNameLength = nameLength ?? Number.MAX_SAFE_INTEGER;
  }

  /**
   * Takes the lock in one statement, in the common case. The holder a failed statement reports comes from
   * its snapshot, which predates an acquisition it raced with (and waited for): then that row is missing
   * or expired, while someone else holds the lock. Only then does a fresh statement read the current
   * holder; and if the name is free by then, the acquisition is tried again, a few times at most.
   */
  async acquire(request: AcquireRequest): Promise<AcquireResult> {
    for (let attempt = 1; ; attempt++) {
      // A Django transaction that deletes a name's expired row and inserts it again waits, in its trigger,
      // for the advisory lock of an acquisition that waits for that row: one of them is rolled back whole.
      const result = await retryDeadlocks(() => this.acquireOnce(request, this.pool));
      if (result.acquired || isLive(result.holder)) return result;
      const { rows } = await this.run(this.pool, 'find', [request.name]);
      if (rows.length) return { acquired: false, holder: holderOf(rows[0]) };
      if (attempt === ACQUIRE_ATTEMPTS) return { acquired: false, holder: null };
    }
  }

  private async acquireOnce(request: AcquireRequest, executor: Executor): Promise<AcquireResult> {
    const { rows } = await this.run(executor, 'acquire', [
      request.name,
      request.owner,
      request.lockedBy,
      request.lockProcess,
      request.expires,
      this.advisoryClass,
    ]);
    const row = rows[0];
    if (row?.acquired) {
      return {
        acquired: true,
        lock: {
          name: request.name,
          owner: request.owner,
          fencingToken: Number(row.fencing_token),
          lockedBy: request.lockedBy,
          lockProcess: request.lockProcess,
          lockedUntil: row.locked_until,
          createdAt: row.created_at,
          updatedAt: row.created_at,
          secondsLeft: request.expires,
        },
      };
    }
    return {
      acquired: false,
      holder: row ? holderOf(row) : null,
    };
  }

  async release(request: ReleaseRequest): Promise<boolean> {
    const { rows } = await this.run(this.pool, 'release', [request.name, request.owner, this.listener ? this.channel : null]);
    const released = rows[0].released > 0;
    if (released) this.waiters.wake(request.name);
    return released;
  }

  async renew(request: RenewRequest, executor: Executor = this.pool): Promise<LockRecord | null> {
    const { rows } = await this.run(executor, 'renew', [request.name, request.owner, request.mode, request.expires]);
    return rows.length ? recordFromRow(rows[0]) : null;
  }

  async find(name: string): Promise<LockRecord | null> {
    const { rows } = await this.run(this.pool, 'find', [name]);
    return rows.length ? recordFromRow(rows[0]) : null;
  }

  async list(): Promise<LockRecord[]> {
    const { rows } = await this.run(this.pool, 'list', []);
    return rows.map(recordFromRow);
  }

  async deleteExpired(limit: number): Promise<number> {
    const { rowCount } = await this.run(this.pool, 'deleteExpired', [limit]);
    return rowCount ?? 0;
  }

  setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return retryDeadlocks(() => this.setLocksOnce(request));
  }

  private setLocksOnce(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.transaction<SetLocksResult>(async (client) => {
      // Every advisory lock of the call before any row lock, as an acquisition takes its one: calls that
      // share a name (or a key) then never hold rows while they wait for each other, and release, renewal,
      // flagging and clean-up each wait for nothing more once they hold a row. A deadlock is left only with
      // a transaction of someone else's on the table, and then the call is run again.
      await this.run(client, 'lockNames', [this.advisoryClass, request.locks.map((lock) => lock.name)]);
      const steps = new Map<string, SetLockStep>();
      for (const lock of inLockingOrder(request.locks)) {
        const { rows } = await this.run(client, 'findForUpdate', [lock.name]);
        const existing = rows.length ? recordFromRow(rows[0]) : null;
        const action = planSetLock(existing, request);
        if (action === 'fail') return { commit: false, result: { conflict: existing! } };
        let result: LockRecord | null = existing;
        if (action === 'create') {
          const acquired = await this.acquireOnce(lock, client);
          if (!acquired.acquired) throw new Error(`Lock "${lock.name}" could not be created inside its own row lock.`);
          result = acquired.lock;
        } else if (action === 'extend') {
          result = await this.renew({ name: lock.name, owner: null, expires: lock.expires, mode: 'extend' }, client);
        }
        steps.set(lock.name, { name: lock.name, existing, action, lock: result });
      }
      return { commit: true, result: { steps: request.locks.map((lock) => steps.get(lock.name)!) } };
    });
  }

  subscribe(name: string): ReleaseWaiting {
    const subscription = this.waiters.subscribe(name);
    const listener = this.listener;
    if (!listener) return subscription;
    // Listen first, then flag the row, so the holder's release cannot slip between the two unannounced.
    const announce = async () => {
      await listener.listening();
      const { rows } = await this.run(this.pool, 'markWaiting', [name]);
      if (rows.length === 0) return 0;
      const secondsLeft: number | null = rows[0].seconds_left;
      // Wake when the lease ends too: an expiry announces nothing.
      return secondsLeft === null ? Infinity : Math.max(0, secondsLeft * 1000) + 1;
    };
    return {
      sleep: (timeoutMs, signal) => subscription.sleep(timeoutMs, signal, announce),
      close: () => subscription.close(),
    };
  }

  async close(): Promise<void> {
    await this.listener?.close();
    await this.pool.end();
  }

  /** Runs `work` in a transaction on a connection of the pool, and commits only if it asks to. */
  private async transaction<T>(work: (client: PoolClient) => Promise<TransactionOutcome<T>>): Promise<T> {
    const client = await this.pool.connect();
    return inTransaction(
      {
        begin: () => client.query('BEGIN'),
        commit: () => client.query('COMMIT'),
        rollback: () => client.query('ROLLBACK'),
        release: (broken) => client.release(broken),
      },
      () => work(client),
    );
  }
}
