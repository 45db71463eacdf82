import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { Pool } from 'pg';
import Redlock from 'redlock';
import { DataSource } from 'typeorm';
import { LockMgrModuleOptions, WithLock } from '../lib';
import { BenchDatabase, createBenchApp, POSTGRES_URL, REDIS_URL } from './bench-app';

/**
 * One way of taking and releasing an uncontended lock. `pair(worker)` takes and releases the
 * worker's own lock once; `concurrency` workers call it in parallel.
 */
export interface Contender {
  label: string;
  pair(worker: number): Promise<void>;
  /** Work the contender does beside its pairs, during its own slices only, until `end` (a `performance.now()`). */
  beside?(end: number): Promise<void>;
  close(): Promise<void>;
}

const LEASE_SECONDS = 60;

export const LIMIT = 'limit: pg, unnamed statements, narrow table';

/** `LockService`, as an app uses it. */
export async function lockServiceContender(
  label: string,
  database: BenchDatabase,
  tableName: string,
  concurrency: number,
  options: LockMgrModuleOptions = {},
): Promise<Contender> {
  const app = await createBenchApp(database, { tableName, poolSize: concurrency, ...options });
  return {
    label,
    pair: async (worker) => {
      const lock = await app.locks.getLock(`worker-${worker}`, { expires: LEASE_SECONDS });
      await app.locks.unlock(lock);
    },
    close: () => app.close(),
  };
}

/**
 * The limit: the same two statements, an atomic upsert that takes a free or expired name and an
 * owner-checked delete that commits without waiting for the disk, sent straight through `pg` as
 * unnamed statements on a narrow table (no fencing token, no bookkeeping). A lock library cannot
 * cost less than this on PostgreSQL.
 */
export async function limitContender(concurrency: number): Promise<Contender> {
  const pool = new Pool({ connectionString: POSTGRES_URL, max: concurrency });
  await pool.query(`DROP TABLE IF EXISTS bench_limit_lock`);
  await pool.query(`CREATE TABLE bench_limit_lock (name varchar(255) PRIMARY KEY, owner varchar(36) NOT NULL, locked_until timestamptz)`);
  const acquire = `INSERT INTO bench_limit_lock AS held (name, owner, locked_until)
    VALUES ($1, $2, clock_timestamp() + $3 * interval '1 second')
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, locked_until = excluded.locked_until
    WHERE held.locked_until <= clock_timestamp() RETURNING owner`;
  // Like LockService's, the release does not wait for the disk: losing it in a crash only delays others.
  const release = `WITH released AS (DELETE FROM bench_limit_lock WHERE name = $1 AND owner = $2 RETURNING 1)
    SELECT count(*), set_config('synchronous_commit', 'off', true) FROM released`;
  return {
    label: LIMIT,
    pair: async (worker) => {
      const name = `worker-${worker}`;
      const owner = randomUUID();
      const { rowCount } = await pool.query(acquire, [name, owner, LEASE_SECONDS]);
      if (rowCount !== 1) throw new Error(`The limit failed to take ${name}.`);
      await pool.query(release, [name, owner]);
    },
    close: async () => {
      await pool.query(`DROP TABLE IF EXISTS bench_limit_lock`);
      await pool.end();
    },
  };
}

/**
 * The naive port: django-lockmgr's way in TypeORM. A transaction checks for the row with
 * `SELECT … FOR UPDATE`, then inserts it; release deletes it.
 */
export async function naivePortContender(concurrency: number): Promise<Contender> {
  const dataSource = await new DataSource({ type: 'postgres', url: POSTGRES_URL, poolSize: concurrency }).initialize();
  await dataSource.query(`DROP TABLE IF EXISTS bench_naive_lock`);
  await dataSource.query(`CREATE TABLE bench_naive_lock (
    name varchar(100) PRIMARY KEY, locked_by varchar(100), lock_process integer, locked_until timestamptz,
    created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)`);
  return {
    label: 'naive port: TypeORM transaction, SELECT … FOR UPDATE then INSERT',
    pair: async (worker) => {
      const name = `worker-${worker}`;
      await dataSource.transaction(async (manager) => {
        const existing = await manager.query(`SELECT name FROM bench_naive_lock WHERE name = $1 FOR UPDATE`, [name]);
        if (existing.length > 0) throw new Error(`The naive port found ${name} locked.`);
        await manager.query(
          `INSERT INTO bench_naive_lock (name, locked_by, lock_process, locked_until, created_at, updated_at)
           VALUES ($1, 'bench', $2, now() + interval '60 seconds', now(), now())`,
          [name, process.pid],
        );
      });
      await dataSource.query(`DELETE FROM bench_naive_lock WHERE name = $1`, [name]);
    },
    close: async () => {
      await dataSource.query(`DROP TABLE IF EXISTS bench_naive_lock`);
      await dataSource.destroy();
    },
  };
}

/** node-redlock on the local Redis: the peer most Nest users reach for. */
export async function redlockContender(): Promise<Contender> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const redlock = new Redlock([redis], { retryCount: 0 });
  return {
    label: 'node-redlock on Redis',
    pair: async (worker) => {
      const lock = await redlock.acquire([`lockmgr-bench:worker-${worker}`], LEASE_SECONDS * 1000);
      await lock.release();
    },
    close: async () => {
      redis.disconnect();
    },
  };
}

@Injectable()
class DecoratedJob {
  @WithLock((worker: number) => `decorated-${worker}`, { expires: LEASE_SECONDS })
  async run(_worker: number): Promise<void> {}
}

/** A `@WithLock` no-op method, and the same `withLock` call made by hand, in one app. */
export async function decoratorContenders(concurrency: number): Promise<[Contender, Contender]> {
  const app = await createBenchApp('postgres', { tableName: 'bench_decorator_lock', poolSize: concurrency }, {}, [DecoratedJob]);
  const job = app.get(DecoratedJob);
  return [
    { label: '@WithLock no-op method', pair: (worker) => job.run(worker), close: () => app.close() },
    {
      label: 'withLock call, same work',
      pair: (worker) => app.locks.withLock(`direct-${worker}`, () => undefined, { expires: LEASE_SECONDS }),
      close: async () => undefined,
    },
  ];
}

/** Locks that pairs leave to expire: one for every `EXPIRING_EVERY` pairs, as apps leave some to their lease. */
const EXPIRING_EVERY = 10;

export interface CleanupContenderOptions {
  /** Milliseconds between clean-ups during the contender's slices; undefined: none. */
  cleanupEveryMs?: number;
  /** Live locks in the table, which a clean-up without the index reads through. */
  liveLocks: number;
  /** Drop the index on locked_until, as for an account that may not create it. */
  withoutIndex?: boolean;
}

/**
 * `LockService` pairs on MariaDB, every tenth pair also taking a lock left to expire, on a table holding
 * `liveLocks` live locks; with the clean-up task's work (`cleanLocks`) beside them every `cleanupEveryMs`.
 */
export async function cleanupContender(
  label: string,
  tableName: string,
  concurrency: number,
  { cleanupEveryMs, liveLocks, withoutIndex = false }: CleanupContenderOptions,
): Promise<Contender> {
  // One more connection than workers, for the clean-up, in every contender alike.
  const app = await createBenchApp('mariadb', { tableName, poolSize: concurrency + 1 });
  const dataSource = app.get(DataSource);
  await dataSource.query(
    `INSERT INTO ${tableName} (name, owner, locked_by, lock_process, locked_until, created_at, updated_at)
     SELECT CONCAT('live-', seq), UUID(), 'bench', 0, UTC_TIMESTAMP(6) + INTERVAL 1 HOUR, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)
     FROM seq_1_to_${liveLocks}`,
  );
  if (withoutIndex) await dataSource.query(`DROP INDEX ${tableName}_locked_until ON ${tableName}`);
  await dataSource.query(`ANALYZE TABLE ${tableName}`);
  const pairs = new Array<number>(concurrency).fill(0);
  return {
    label,
    pair: async (worker) => {
      const lock = await app.locks.getLock(`worker-${worker}`, { expires: LEASE_SECONDS });
      await app.locks.unlock(lock);
      if (++pairs[worker] % EXPIRING_EVERY === 0) await app.locks.getLock(`expiring-${worker}-${pairs[worker]}`, { expires: 0.05 });
    },
    beside: async (end) => {
      if (cleanupEveryMs === undefined) return;
      while (performance.now() < end) {
        await app.locks.cleanLocks();
        await new Promise((resolve) => setTimeout(resolve, cleanupEveryMs));
      }
    },
    close: () => app.close(),
  };
}
