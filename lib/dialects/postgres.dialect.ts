import type { Pool, PoolClient, PoolConfig } from 'pg';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../lock.entity';
import {
  AcquireRequest,
  AcquireResult,
  checkTableColumns,
  holderOf,
  inLockingOrder,
  LockDialect,
  planSetLock,
  recordFromRow,
  ReleaseWaiting,
  ReleaseRequest,
  RenewRequest,
  SetLocksRequest,
  SetLocksResult,
  SetLockStep,
} from './lock-dialect';
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
    markWaiting: `WITH held AS (
        SELECT EXTRACT(EPOCH FROM locked_until - clock_timestamp())::float8 AS seconds_left
        FROM ${table} WHERE name = $1::varchar AND ${LIVE}
      ), flagged AS (
        UPDATE ${table} SET waiting = true WHERE name = $1 AND ${LIVE} AND NOT waiting
      )
      SELECT seconds_left, set_config('synchronous_commit', 'off', true) AS synchronous_commit FROM held`,
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
    lockName: `SELECT pg_advisory_xact_lock($1::int, hashtext($2::varchar))`,
    lockTable: `SELECT pg_advisory_xact_lock($1::int, 0)`,
    schemaState: POSTGRES_SCHEMA_STATE,
  };
}

/**
 * PostgreSQL: every operation is one prepared statement on a pool of its own, so it is one round trip,
 * never waits behind the app's transactions, and never joins one.
 */
export class PostgresDialect implements LockDialect {
  maxNameLength = 255;
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
    const halfTimeout = Math.ceil((options.operationTimeout * 1000) / 2);
    const connection: PoolConfig = {
      ...driver.master.options,
      connectionTimeoutMillis: halfTimeout,
      query_timeout: halfTimeout,
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
    if (postgresSchemaComplete(await this.schemaState(this.pool))) return;
    await this.transaction(async (client) => {
      // Serialises instances starting together: CREATE … IF NOT EXISTS alone can still collide.
      await this.run(client, 'lockTable', [this.advisoryClass]);
      const state = await this.schemaState(client);
      for (const statement of postgresSchemaStatements(this.options.tableName, this.schema, state)) await client.query(statement);
      return { commit: true, result: undefined };
    });
  }

  async inspectTable(): Promise<void> {
    const { columns, nameLength } = await this.schemaState(this.pool);
    checkTableColumns(this.names.table, columns);
    this.maxNameLength = nameLength ?? Number.MAX_SAFE_INTEGER;
  }

  async acquire(request: AcquireRequest, executor: Executor = this.pool): Promise<AcquireResult> {
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

  async setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.transaction<SetLocksResult>(async (client) => {
      const steps = new Map<string, SetLockStep>();
      for (const lock of inLockingOrder(request.locks)) {
        await this.run(client, 'lockName', [this.advisoryClass, lock.name]);
        const { rows } = await this.run(client, 'findForUpdate', [lock.name]);
        const existing = rows.length ? recordFromRow(rows[0]) : null;
        const action = planSetLock(existing, request);
        if (action === 'fail') return { commit: false, result: { conflict: existing! } };
        let result: LockRecord | null = existing;
        if (action === 'create') {
          const acquired = await this.acquire(lock, client);
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
