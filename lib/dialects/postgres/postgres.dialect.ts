import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Pool } from 'pg';
import type { DataSource } from 'typeorm';
import type { LockRecord } from '../../lock.entity';
import { deadlockRetry } from '../deadlock-retry';
import { AcquireRequest, AcquireResult, HolderInfo, LockDialect, ReleaseWaiting, ReleaseRequest, RenewRequest, SetLocksRequest, SetLocksResult, SetLockStep } from '../lock-dialect';
import { holderOf, recordFromRow } from '../lock-row';
import { inLockingOrder, planSetLock } from '../set-lock-plan';
import { ReleaseWaiters } from '../release-waiters';
import { namedConnection } from './postgres-application-name';
import { PostgresListener } from './postgres-listener';
import { PostgresQueue, sleepLimit, TakenPlace } from './postgres-queue';
import { PLACE_LAPSE_SECONDS } from './postgres-queue-place';
import { createPostgresPool, PostgresExecutor, PostgresPool, postgresTransaction, probePostgresServer, runStatement } from './postgres-pool';
import { postgresNames } from './postgres-names';
import { ensurePostgresTable, functionsSchema, inspectPostgresTable } from './postgres.schema';
import { postgresStatements } from './postgres-statements';

export interface PostgresDialectOptions {
  tableName: string;
  poolSize: number;
  /** Announce releases with NOTIFY to waiters LISTENing in other processes. */
  notify: boolean;
  /** Seconds an operation may take, connecting included. */
  operationTimeout: number;
  /** A direct connection for the listener, when the app's connection goes through a pooler. */
  listenUrl?: string;
  /** Named prepared statements; undefined: unless a pooler is found at start-up. */
  preparedStatements?: boolean;
}

const UNDELIVERED_WARNING =
  'PostgreSQL notifications do not reach this app: its connection goes through a pooler in transaction mode ' +
  '(PgBouncer, Supavisor, RDS Proxy), where LISTEN lasts one transaction. Waiters in other processes find released ' +
  'locks by polling (within pollInterval). For instant hand-off, give the module option listenUrl a direct ' +
  'connection to the database; or set notify: false to poll without this warning.';

/** Attempts, in all, of an acquisition that keeps meeting a holder its snapshot does not show (see `acquire`). */
const ACQUIRE_ATTEMPTS = 3;

/** Whether a failed acquisition's holder still holds the lock by the database's clock, as it read it. */
function isLive(holder: HolderInfo | null): boolean {
  return holder !== null && (holder.secondsLeft === null || holder.secondsLeft > 0);
}

/** What one acquisition statement found: `queued` when the name went to a waiter ahead; `taken`, what it found of the place it took, if it took one. */
type AcquireAnswer = { result: AcquireResult; queued: boolean; taken?: Pick<TakenPlace, 'held' | 'seconds_left' | 'queued'> };

/** The values of `enqueue` in an acquisition that takes no place. */
const ENQUEUE_NULLS = new Array(10).fill(null);

const DEADLOCK_DETECTED = '40P01';
const retryDeadlocks = deadlockRetry((error) => (error as { code?: string }).code === DEADLOCK_DETECTED);

/**
 * PostgreSQL: every operation is one statement on a pool of its own (prepared, unless behind a pooler),
 * so it is one round trip, never waits behind the app's transactions, and never joins one.
 */
export class PostgresDialect implements LockDialect {
  maxNameLength = 255;
  private readonly postgres: PostgresPool;
  private readonly pool: Pool;
  /** Settled at start-up, before the first lock operation. */
  private prepared = true;
  /** Each transaction's statement limit, when the connections cannot carry it (behind a pooler). */
  private transactionLimitMs?: number;
  private started?: Promise<void>;
  /** The data source's schema; from start-up on, the one the lock table's functions name (see `functionsSchema`). */
  private tableSchema?: string;
  private readonly advisoryClass: number;
  private readonly sql: ReturnType<typeof postgresStatements>;
  /** Present when releases are announced with NOTIFY. */
  private readonly listener?: PostgresListener;
  private readonly queue: PostgresQueue;
  /** The channel on which a release tells one of this app's waiters that its turn has come. */
  private readonly addressedChannel = `nestjs-lockmgr ${randomUUID()}`;

  constructor(
    dataSource: DataSource,
    private readonly options: PostgresDialectOptions,
    private readonly waiters: ReleaseWaiters,
  ) {
    this.tableSchema = (dataSource.options as { schema?: string }).schema;
    const names = postgresNames(options.tableName, this.tableSchema);
    this.advisoryClass = names.advisoryClass;
    this.sql = postgresStatements(names);
    this.postgres = createPostgresPool(dataSource, options);
    this.pool = this.postgres.pool;
    this.queue = new PostgresQueue({
      take: async (place, listener) =>
        (await this.run(this.pool, 'enqueue', place.announcement(this.announcesReleases ? this.addressedChannel : null, listener?.session))).rows[0],
      renew: async (waiters) => (await this.run(this.pool, 'renewPlaces', [waiters, PLACE_LAPSE_SECONDS])).rows,
      leave: async (waiter) => (await this.run(this.pool, 'leave', [waiter, this.announcesReleases])).rows[0],
      handedOver: async (place) => (await this.run(this.pool, 'handedOver', [place.request.name, place.owner])).rows[0],
      release: (place) => this.release({ name: place.request.name, owner: place.owner }),
    });
    if (options.notify) {
      // The listener only LISTENs: it needs no statement limit, which a pooler would refuse.
      const { statement_timeout: _, ...session } = this.postgres.connection;
      this.listener = new PostgresListener(
        this.postgres.createClient,
        namedConnection({ ...session, ...(options.listenUrl && { connectionString: options.listenUrl }) }, 'nestjs-lockmgr listener'),
        this.channel,
        this.addressedChannel,
        (notice) => this.noticed(notice),
        (notice) => this.queue.deliver(notice),
        () => waiters.wakeAll(),
        (channel, payload) => this.pool.query('SELECT pg_notify($1, $2)', [channel, payload]),
        () => new Logger('LockMgrModule').warn(UNDELIVERED_WARNING),
      );
    }
  }

  get announcesReleases(): boolean {
    return this.listener?.available ?? false;
  }

  /**
   * Learns what the pool reaches, once, before anything else runs on it. Behind a pooler, statements go
   * unnamed (unless the app asks otherwise), and the listener starts now, checking that notifications
   * arrive, so that the app hears at start-up if its waiters will poll. Start-up does not wait for it.
   */
  private start(): Promise<void> {
    return (this.started ??= (async () => {
      const server = await probePostgresServer(this.postgres);
      this.tableSchema = functionsSchema(this.tableSchema, server.currentSchema);
      this.prepared = this.options.preparedStatements ?? !server.pooled;
      if (!server.statementTimeout) this.transactionLimitMs = this.postgres.pool.options.query_timeout;
      // A listener that cannot connect now is tried again by the first wait.
      if (server.pooled) this.listener?.listening().catch(() => undefined);
    })());
  }

  /** The NOTIFY channel of this table's releases. */
  private get channel(): string {
    return this.options.tableName;
  }

  /** The channel releases notify on, or null while notices do not reach waiters. */
  private get notifyChannel(): string | null {
    return this.announcesReleases ? this.channel : null;
  }

  /** A notice on the table's channel is " <name>", for every waiter of the name. */
  private noticed(notice: string): void {
    if (notice.startsWith(' ')) this.waiters.wake(notice.slice(1));
  }

  private run(executor: PostgresExecutor, name: keyof ReturnType<typeof postgresStatements>, values: unknown[]) {
    return runStatement(executor, this.prepared, this.options.tableName, name, this.sql[name], values);
  }

  async ensureTable(): Promise<void> {
    await this.start();
    await ensurePostgresTable(this.pool, this.options.tableName, this.tableSchema);
  }

  async inspectTable(): Promise<void> {
    await this.start();
    this.maxNameLength = await inspectPostgresTable(this.pool, this.options.tableName, this.tableSchema);
  }

  /**
   * Takes the lock in one statement, in the common case. The holder a failed statement reports comes from
   * its snapshot, which predates an acquisition it raced with (and waited for): then that row is missing
   * or expired, while someone else holds the lock. Only then does a fresh statement read the current
   * holder; and if the name is free by then, the acquisition is tried again, a few times at most.
   * A caller that `waits` takes its place in line with its first failed statement, once the app listens.
   */
  async acquire(request: AcquireRequest): Promise<AcquireResult> {
    const listener = this.listener?.session && this.announcesReleases ? this.listener : undefined;
    if (request.waits && request.place === undefined && listener) return this.acquireOrWait(request, listener);
    for (let attempt = 1; ; attempt++) {
      // A Django transaction that deletes a name's expired row and inserts it again waits, in its trigger,
      // for the advisory lock of an acquisition that waits for that row: one of them is rolled back whole.
      const { result, queued } = await retryDeadlocks(() => this.acquireOnce(request, this.pool));
      if (result.acquired || queued || isLive(result.holder)) return result;
      const { rows } = await this.run(this.pool, 'find', [request.name]);
      if (rows.length) return { acquired: false, holder: holderOf(rows[0]) };
      if (attempt === ACQUIRE_ATTEMPTS) return { acquired: false, holder: null };
    }
  }

  /** One statement that takes the lock, or else the caller's place in line: the wait it begins comes with the failed result. */
  private async acquireOrWait(request: AcquireRequest, listener: PostgresListener): Promise<AcquireResult> {
    const { place, waiting } = this.queue.join(this.waiters.subscribe(request.name), request, listener);
    const placing = place.announcement(this.addressedChannel, listener.session);
    const sentAt = performance.now();
    let waits = false;
    try {
      const { result, taken } = await retryDeadlocks(() => this.acquireOnce({ ...request, place: place.waiter }, this.pool, true, placing));
      if (result.acquired) return result;
      place.taken(sentAt, sleepLimit(taken!));
      waits = true;
      return { acquired: false, holder: taken!.held ? result.holder : null, waiting };
    } finally {
      if (!waits) waiting.close();
    }
  }

  /** One acquisition statement. Without `inLine`, it goes ahead of every waiter; with `placing` (the values of `enqueue`), a failed one takes the caller's place. */
  private async acquireOnce(request: AcquireRequest, executor: PostgresExecutor, inLine = true, placing?: unknown[]): Promise<AcquireAnswer> {
    const { rows } = await this.run(executor, 'acquire', [
      request.name,
      request.owner,
      request.lockedBy,
      request.lockProcess,
      request.expires,
      this.advisoryClass,
      request.place ?? null,
      inLine,
      ...(placing ?? ENQUEUE_NULLS),
    ]);
    const [row] = rows;
    if (row.acquired) {
      if (request.place !== undefined) this.queue.served(request.place);
      const { name, owner, lockedBy, lockProcess, expires: secondsLeft } = request;
      const { fencing_token: fencingToken, locked_until: lockedUntil, created_at: createdAt } = row;
      const lock: LockRecord = { name, owner, lockedBy, lockProcess, secondsLeft, fencingToken: Number(fencingToken), lockedUntil, createdAt, updatedAt: createdAt };
      return { result: { acquired: true, lock }, queued: false };
    }
    const holder = row.found ? holderOf(row) : null;
    const queued: boolean = row.queued;
    const taken = row.place_held === null ? undefined : { held: row.place_held, seconds_left: row.seconds_left, queued };
    // A name free for a waiter ahead has no holder whose lease to wait for: the waiter is told when its turn comes.
    return { result: { acquired: false, holder: queued && !isLive(holder) ? null : holder }, queued, taken };
  }

  async release(request: ReleaseRequest): Promise<boolean> {
    // A release that hands the lock over locks two places, as a renewal of an app's places may too, in its own order.
    const [{ released, next }] = (await retryDeadlocks(() => this.run(this.pool, 'release', [request.name, request.owner, this.notifyChannel]))).rows;
    // Waiters of this process hear at once, without the round trip of the notice.
    if (released > 0 && next !== null) this.queue.deliver(next);
    else if (released > 0) this.waiters.wake(request.name);
    return released > 0;
  }

  async renew(request: RenewRequest, executor: PostgresExecutor = this.pool): Promise<LockRecord | null> {
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
    return postgresTransaction<SetLocksResult>(this.pool, async (client) => {
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
          // setLock goes ahead of the queue, as django-lockmgr's set_lock, which knows none.
          const { result: acquired } = await this.acquireOnce(lock, client, false);
          if (!acquired.acquired) throw new Error(`Lock "${lock.name}" could not be created inside its own row lock.`);
          result = acquired.lock;
        } else if (action === 'extend') {
          result = await this.renew({ name: lock.name, owner: null, expires: lock.expires, mode: 'extend' }, client);
        }
        steps.set(lock.name, { name: lock.name, existing, action, lock: result });
      }
      return { commit: true, result: { steps: request.locks.map((lock) => steps.get(lock.name)!) } };
    }, this.transactionLimitMs);
  }

  subscribe(request: AcquireRequest): ReleaseWaiting {
    return this.queue.join(this.waiters.subscribe(request.name), request, this.listener?.available ? this.listener : undefined).waiting;
  }

  async close(): Promise<void> {
    await this.queue.settle();
    await this.listener?.close();
    await this.pool.end();
  }
}
