import { Injectable } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { LockDatabaseError, LockEntity, LockMgrHealthIndicator, LockMgrModuleOptions, LockService, WithLock } from '../lib';
import { resolveLockMgrOptions } from '../lib/lockmgr-options';
import { dropLockTable, lockTestingModule, until } from './support/lock-app';
import { describeBehindPgbouncer, Pooler } from './support/pgbouncer';
import { runCommand } from './support/processes';
import { RecordingLogger } from './support/recording-logger';
import { Client } from 'pg';
import { describeOnDatabase, POSTGRES_URL, testDatabase, uniqueName } from './support/test-databases';

@Injectable()
class NightlyReport {
  runs = 0;

  @WithLock('report:nightly', { expires: 30 })
  async run(): Promise<number> {
    return ++this.runs;
  }
}

/** Nest's logger is one per process: every app of the file logs here. */
const logger = new RecordingLogger();
const warnings = () => logger.lines('warn', 'LockMgrModule');

interface PooledApp {
  locks: LockService;
  report: NightlyReport;
  health: LockMgrHealthIndicator;
  close(): Promise<void>;
}

/** An app whose data source goes through the pooler, as on a hosted database's pooled URL. */
async function startPooledApp(pooler: Pooler, isolation: string, options: LockMgrModuleOptions = {}): Promise<PooledApp> {
  const moduleRef = await lockTestingModule(pooler.database, isolation, options, {
    imports: [TerminusModule.forRoot({ logger: false })],
    providers: [NightlyReport],
  })
    .setLogger(logger)
    .compile();
  await moduleRef.init();
  return {
    locks: moduleRef.get(LockService),
    report: moduleRef.get(NightlyReport),
    health: moduleRef.get(LockMgrHealthIndicator),
    close: () => moduleRef.close(),
  };
}

/**
 * Holds the row of `name` locked from a session of its own while `operation` runs into it, and tells
 * whether the server still has a statement waiting for that row once the operation failed: a statement
 * the client gave up on must not go on to commit later.
 */
async function blockedOnRow(table: string, name: string, operation: () => Promise<unknown>): Promise<{ error: unknown; stillWaiting: number }> {
  const blocker = new Client({ connectionString: POSTGRES_URL });
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query(`SELECT FROM ${table} WHERE name = $1 FOR UPDATE`, [name]);
    const error = await operation().then(() => undefined, (failure: unknown) => failure);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { rows } = await blocker.query(
      `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND pid <> pg_backend_pid()`,
      [`%${table}%`],
    );
    return { error, stillWaiting: rows[0].waiting };
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
}

describeBehindPgbouncer('Lock operations behind PgBouncer in transaction mode, default options', (pooler) => {
  const isolation = uniqueName('pooler');
  const apps: PooledApp[] = [];
  let first: PooledApp;
  let second: PooledApp;

  beforeAll(async () => {
    first = await startPooledApp(pooler(), isolation, { pollInterval: 0.2 });
    second = await startPooledApp(pooler(), isolation, { pollInterval: 0.2 });
    apps.push(first, second);
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await dropLockTable(testDatabase('postgres'), isolation);
  });

  it('gets, tries, renews, lists and unlocks', async () => {
    const lock = await first.locks.getLock('service', { expires: 30 });
    expect(lock).toBeInstanceOf(LockEntity);
    expect(await second.locks.tryLock('service')).toBeNull();
    await expect(second.locks.getLock('service')).rejects.toThrow(/"service" is held by/);
    expect(await second.locks.isLocked('service')).toBe(true);
    const renewed = await first.locks.renewLock(lock, { expires: 120 });
    expect(renewed.expiresSeconds).toBeGreaterThan(110);
    expect((await second.locks.listLocks()).map((held) => held.name)).toContain('service');
    expect(await first.locks.unlock(lock)).toBe(true);
    expect(await second.locks.isLocked('service')).toBe(false);
  });

  it('sets several locks in one transaction, and cleans expired ones', async () => {
    const set = await first.locks.setLock(['set-a', 'set-b'], { timeout: 30 });
    expect(set.counts).toEqual({ created: 2, renewed: 0, skipCreate: 0, skipRenew: 0 });
    expect((await first.locks.setLock(['set-a', 'set-b'], { timeout: 60 })).counts).toMatchObject({ renewed: 2 });
    await first.locks.getLock('short', { expires: 0.2 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await second.locks.cleanLocks()).toBeGreaterThanOrEqual(1);
    expect(await first.locks.unlock('set-a')).toBe(true);
    expect(await first.locks.unlock('set-b')).toBe(true);
  });

  it('runs managers and @WithLock methods', async () => {
    const manager = await first.locks.manager('managed', { expires: 30 });
    expect(await second.locks.tryLock('managed')).toBeNull();
    await manager.release();
    expect(await second.locks.isLocked('managed')).toBe(false);
    expect(await first.report.run()).toBe(1);
    expect(await second.report.run()).toBe(1);
  });

  it('reports healthy', async () => {
    expect(await first.health.isHealthy()).toEqual({ lockmgr: { status: 'up' } });
  });

  it('runs 1,600 get/unlock pairs across several connections without a failure', async () => {
    const failures: unknown[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async (_, worker) => {
        const app = apps[worker % 2];
        for (let pair = 0; pair < 100; pair++) {
          try {
            const lock = await app.locks.getLock(`pair-${worker}`, { expires: 30 });
            if (!(await app.locks.unlock(lock))) failures.push(`pair-${worker}: not released`);
          } catch (error) {
            failures.push(error);
          }
        }
      }),
    );
    expect(failures).toEqual([]);
  });

  it('gives a contended lock to exactly one of many concurrent callers', async () => {
    const taken = await Promise.all(Array.from({ length: 20 }, (_, caller) => apps[caller % 2].locks.tryLock('contended', { expires: 30 })));
    expect(taken.filter((lock) => lock !== null)).toHaveLength(1);
    await first.locks.unlock('contended');
  });

  it('says once per app, at start-up, that notifications do not arrive and what to do', async () => {
    await until(() => warnings().length >= apps.length, 5000);
    expect(warnings()).toEqual(apps.map(() => expect.stringMatching(/notifications do not reach this app.*listenUrl/)));
  });

  it('lets a waiter in another app take a released lock by polling', async () => {
    const held = await first.locks.getLock('handed', { expires: 30 });
    const waited = second.locks.getLock('handed', { wait: 5, expires: 30 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await first.locks.unlock(held);
    const lock = await waited;
    expect(lock.name).toBe('handed');
    expect(warnings()).toHaveLength(apps.length);
  });

  it("limits setLock's statements on the server too, so one the client gave up on does not go on waiting", async () => {
    const limited = await startPooledApp(pooler(), isolation, { operationTimeout: 1, notify: false });
    apps.push(limited);
    await limited.locks.getLock('blocked', { expires: 30 });
    const { error, stillWaiting } = await blockedOnRow(isolation, 'blocked', () => limited.locks.setLock(['blocked'], { timeout: 60 }));
    expect(error).toBeInstanceOf(LockDatabaseError);
    expect(stillWaiting).toBe(0);
  });

  it('serves the command line given the pooler URL', async () => {
    await first.locks.getLock('listed', { expires: 60, lockedBy: 'pooled-host' });
    const finished = await runCommand(['list', '--url', pooler().url, '--table', isolation, '--json']);
    expect(finished).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(finished.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'listed', lockedBy: 'pooled-host' })]));
  });
});

describeBehindPgbouncer('Hand-off behind PgBouncer with a direct connection for listening (listenUrl)', (pooler) => {
  const isolation = uniqueName('pooler_listen');
  let holder: PooledApp;
  let waiter: PooledApp;
  let warnedBefore: number;

  beforeAll(async () => {
    warnedBefore = warnings().length;
    // A long poll: a waiter that got the lock quickly can only have been notified.
    holder = await startPooledApp(pooler(), isolation, { listenUrl: POSTGRES_URL, pollInterval: 10 });
    waiter = await startPooledApp(pooler(), isolation, { listenUrl: POSTGRES_URL, pollInterval: 10 });
  });
  afterAll(async () => {
    await holder?.close();
    await waiter?.close();
    await dropLockTable(testDatabase('postgres'), isolation);
  });

  it('hands a released lock to a waiter in another app within milliseconds, without a warning', async () => {
    const held = await holder.locks.getLock('handed', { expires: 30 });
    const waited = waiter.locks.getLock('handed', { wait: 20, expires: 30 }).then(() => performance.now());
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const released = performance.now();
    await holder.locks.unlock(held);
    const acquiredAfterMs = (await waited) - released;
    expect(acquiredAfterMs).toBeLessThan(200);
    expect(warnings().slice(warnedBefore)).toEqual([]);
  });
});

describeOnDatabase(testDatabase('postgres'), 'The server-side limit of a direct connection', () => {
  const isolation = uniqueName('pooler_direct');
  let app: PooledApp;

  beforeAll(async () => {
    app = await startPooledApp({ url: POSTGRES_URL, database: testDatabase('postgres') }, isolation, { operationTimeout: 1, notify: false });
  });
  afterAll(async () => {
    await app?.close();
    await dropLockTable(testDatabase('postgres'), isolation);
  });

  it('stops a single statement on the server when the client gives up on it', async () => {
    await app.locks.getLock('blocked', { expires: 30 });
    const { error, stillWaiting } = await blockedOnRow(isolation, 'blocked', () => app.locks.unlock('blocked'));
    expect(error).toBeInstanceOf(LockDatabaseError);
    expect(stillWaiting).toBe(0);
  });
});

describe('The pooler options', () => {
  it('refuses a listenUrl that is not a postgres:// URL, and a preparedStatements that is not a boolean, naming the option', () => {
    expect(() => resolveLockMgrOptions({ listenUrl: 'mysql://root@db/test' })).toThrow(
      'LockMgrModule option listenUrl must be a postgres:// URL, got a text that does not start with postgres:// or postgresql://.',
    );
    expect(() => resolveLockMgrOptions({ listenUrl: 5432 })).toThrow('LockMgrModule option listenUrl must be a string');
    expect(() => resolveLockMgrOptions({ preparedStatements: 'yes' })).toThrow('LockMgrModule option preparedStatements');
    expect(resolveLockMgrOptions({ listenUrl: 'postgresql://app@db.internal/app' })).toMatchObject({ listenUrl: 'postgresql://app@db.internal/app' });
  });
});
