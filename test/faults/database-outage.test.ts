import { LockDatabaseError, LockedError, LockLostError, LockManager } from '../../lib';
import { createLockApp, LockApp, sleep } from '../support/lock-app';
import { useProxiedLockApps } from '../support/proxied-lock-apps';
import { PROXIED_SERVERS, TcpProxy } from '../support/tcp-proxy';
import { describeOnDatabase, uniqueName } from '../support/test-databases';

const OPERATION_TIMEOUT = 1;

for (const server of PROXIED_SERVERS) describeOnDatabase(server.database, 'Database outage', (database) => {
  const isolation = uniqueName('outage');
  let proxy: TcpProxy;
  let direct: LockApp;
  let proxied: LockApp;

  useProxiedLockApps(server, isolation, (apps) => ({ proxy, direct, proxied } = apps), { operationTimeout: OPERATION_TIMEOUT });

  /** Runs `call` and says how it failed and how long it took. */
  async function failure(call: () => Promise<unknown>): Promise<{ error: unknown; seconds: number }> {
    const started = performance.now();
    const error = await call().then(
      () => new Error('the call succeeded'),
      (e: unknown) => e,
    );
    return { error, seconds: (performance.now() - started) / 1000 };
  }

  it('rejects operations with a clear error while the server is down, and recovers by itself', async () => {
    await proxied.locks.getLock('warm', { expires: 60 });
    proxy.down();
    for (const call of [
      () => proxied.locks.getLock('down'),
      () => proxied.locks.getLock('down', { wait: 2 }),
      () => proxied.locks.isLocked('warm'),
      () => proxied.locks.unlock('warm'),
      () => proxied.locks.withLock('down', () => 'ran'),
    ]) {
      const { error, seconds } = await failure(call);
      expect(error).toBeInstanceOf(LockDatabaseError);
      expect((error as Error).message).toMatch(/^Could not (acquire|look up|release) lock "(down|warm)": /);
      expect(seconds).toBeLessThan(2 + 5);
    }
    proxy.up();
    expect(await proxied.locks.isLocked('warm')).toBe(true);
    expect(await proxied.locks.withLock('up-again', () => 'ran')).toBe('ran');
  });

  it('fails operations within the operation timeout when the network stops answering', async () => {
    await proxied.locks.isLocked('warm');
    proxy.partition();
    const { error, seconds } = await failure(() => proxied.locks.getLock('partitioned', { wait: 1 }));
    expect(error).toBeInstanceOf(LockDatabaseError);
    expect(seconds).toBeLessThan(1 + OPERATION_TIMEOUT + 1);
    proxy.up();
    expect(await proxied.locks.tryLock('after-partition')).not.toBeNull();
  });

  it('tells a holder whose renewals cannot land that it lost the lock, before anyone else can take it', async () => {
    const holder = await proxied.locks.manager('renewals', { expires: 1.5 });
    let lostAt = Infinity;
    let reason: unknown;
    holder.signal.addEventListener('abort', () => {
      lostAt = performance.now();
      reason = holder.signal.reason;
    });
    proxy.partition();
    const taken = await direct.locks.getLock('renewals', { wait: 10 });
    const takenAt = performance.now();
    expect(reason).toBeInstanceOf(LockLostError);
    expect(lostAt).toBeLessThan(takenAt);
    expect(taken.fencingToken).toBeGreaterThan(holder.fencingToken);
    proxy.up();
    await holder.release();
    expect((await direct.locks.listLocks()).find((lock) => lock.name === 'renewals')?.fencingToken).toBe(taken.fencingToken);
  });

  // Only PostgreSQL names the connections to kill by their last query; MySQL shows none for idle ones.
  if (database.kind !== 'postgres') return;

  it('keeps one holder at a time while the server kills its connections under load', async () => {
    const other = await createLockApp(database, isolation, { operationTimeout: OPERATION_TIMEOUT });
    let inside = 0;
    let overlaps = 0;
    let lastToken = 0;
    let backwards = 0;
    const failures: unknown[] = [];
    let running = true;
    const worker = async (app: LockApp) => {
      let sections = 0;
      while (running) {
        await app.locks
          .withLock(
            'contested',
            async (manager: LockManager) => {
              if (++inside > 1) overlaps++;
              if (manager.fencingToken <= lastToken) backwards++;
              lastToken = manager.fencingToken;
              await sleep(2);
              inside--;
              sections++;
            },
            { wait: 5, expires: 5 },
          )
          .catch((error: unknown) => failures.push(error));
      }
      return sections;
    };
    const workers = [proxied, other, proxied, other].map(worker);
    let killed = 0;
    for (let round = 0; round < 5; round++) {
      await sleep(150);
      killed += await direct.dataSource.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name IN ('nestjs-lockmgr', 'nestjs-lockmgr listener')
           AND (query LIKE '%${isolation}%')`,
      ).then((rows: unknown[]) => rows.length);
    }
    await sleep(300);
    running = false;
    const sections = await Promise.all(workers);
    await other.close();
    expect(killed).toBeGreaterThanOrEqual(5);
    expect(overlaps).toBe(0);
    expect(backwards).toBe(0);
    // A release cut off by a killed connection fails (its lock is let go again in the background), and a waiter may time out.
    for (const error of failures) expect(error instanceof LockDatabaseError || error instanceof LockedError).toBe(true);
    expect(sections.reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
    expect(await proxied.locks.withLock('after-kills', () => 'ran')).toBe('ran');
  });
});
