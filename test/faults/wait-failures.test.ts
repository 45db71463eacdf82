import { LockedError } from '../../lib';
import { createLockApp, LockApp, sleep } from '../support/lock-app';
import { useProxiedLockApps } from '../support/proxied-lock-apps';
import { PROXIED_SERVERS, proxyServer, TcpProxy } from '../support/tcp-proxy';
import { describeOnDatabase, uniqueName } from '../support/test-databases';

const OPERATION_TIMEOUT = 1;

for (const server of PROXIED_SERVERS) describeOnDatabase(server.database, 'A wait whose database calls fail for a while', (database) => {
  const isolation = uniqueName('wait_failures');
  let proxy: TcpProxy;
  let direct: LockApp;
  let proxied: LockApp;

  useProxiedLockApps(server, isolation, (apps) => ({ proxy, direct, proxied } = apps), { operationTimeout: OPERATION_TIMEOUT });

  it('keeps trying while the database is unreachable, and gets the lock once it is back and free', async () => {
    const holder = await direct.locks.getLock('comes-back', { expires: 60 });
    const waiting = proxied.locks.getLock('comes-back', { wait: 8 });
    await sleep(300);
    proxy.down();
    await sleep(1500);
    proxy.up();
    await direct.locks.unlock(holder);
    const lock = await waiting;
    expect(lock.name).toBe('comes-back');
    expect(lock.fencingToken).toBeGreaterThan(holder.fencingToken);
  });

  it('ends at its deadline with LockedError when the database found the lock held, though later calls failed', async () => {
    const holder = await direct.locks.getLock('stays-held', { expires: 60 });
    const startedAt = performance.now();
    const waiting = proxied.locks.getLock('stays-held', { wait: 2 }).catch((error: unknown) => error);
    await sleep(200);
    proxy.down();
    const error = await waiting;
    expect(error).toBeInstanceOf(LockedError);
    expect((error as LockedError).lockedBy).toBe(holder.lockedBy);
    expect(performance.now() - startedAt).toBeGreaterThanOrEqual(2000);
    expect(performance.now() - startedAt).toBeLessThan(2000 + OPERATION_TIMEOUT * 1000 + 1000);
  });

  if (database.kind !== 'postgres') return;

  it('falls back to polling when the listener for releases cannot connect', async () => {
    // An app of its own, whose listener has never connected.
    const started = await proxyServer(server, isolation);
    const app = await createLockApp(started.throughProxy, isolation, { operationTimeout: OPERATION_TIMEOUT });
    try {
      const holder = await direct.locks.getLock('no-listener', { expires: 60 });
      // The lock operations' pool has its connection; the listener would need a new one.
      expect(await app.locks.isLocked('no-listener')).toBe(true);
      started.proxy.refuseNew();
      const waiting = app.locks.getLock('no-listener', { wait: 8 });
      await sleep(500);
      await direct.locks.unlock(holder);
      expect((await waiting).name).toBe('no-listener');
    } finally {
      started.proxy.up();
      await app.close();
      await started.proxy.close();
    }
  });
});
