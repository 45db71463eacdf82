import { LockContext, LockedError, LockLostError, LockManager, LockNotFoundError } from '../lib';
import { createLockApp, dropLockTable, LockApp, sleep, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

describeEachDatabase('LockManager and withLock', (database) => {
  const isolation = uniqueName('manager');
  let app: LockApp;
  let name: string;
  let counter = 0;

  useLockApp(database, isolation, (started) => (app = started));
  beforeEach(() => {
    name = `job-${++counter}`;
  });

  it('holds the main lock and every lock it took, and releases them all', async () => {
    const manager = await app.locks.manager(name, { expires: 60 });
    expect(manager.mainLock.name).toBe(name);
    expect(manager.fencingToken).toBe(manager.mainLock.fencingToken);
    expect(await manager.lock(`${name}-other`)).toBe(true);
    expect(manager.locks.map((lock) => lock.name)).toEqual([name, `${name}-other`]);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(true);
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
    await expect(manager.lock(`${name}-late`)).rejects.toThrow(/already released/);
  });

  it('throws LockedError when the main lock is held elsewhere', async () => {
    await app.locks.getLock(name);
    await expect(app.locks.manager(name)).rejects.toBeInstanceOf(LockedError);
  });

  it('lock() returns false with ret, and throws LockedError without it', async () => {
    await app.locks.getLock(`${name}-busy`);
    const manager = await app.locks.manager(name);
    expect(await manager.lock(`${name}-busy`, { ret: true })).toBe(false);
    await expect(manager.lock(`${name}-busy`)).rejects.toBeInstanceOf(LockedError);
    expect(manager.locks).toHaveLength(1);
    await manager.release();
  });

  it('unlock() releases the main lock by default, or the lock it names', async () => {
    const manager = await app.locks.manager(name);
    await manager.lock(`${name}-other`);
    expect(await manager.unlock(`${name}-other`)).toBe(true);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
    expect(await manager.unlock(`${name}-never-taken`)).toBe(false);
    expect(await manager.unlock()).toBe(true);
    expect(await app.locks.isLocked(name)).toBe(false);
    await manager.release();
  });

  it('releases its locks when an `await using` block ends', async () => {
    {
      await using manager = await app.locks.manager(name);
      await manager.lock(`${name}-other`);
      expect(await app.locks.isLocked(name)).toBe(true);
    }
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
  });

  it('releases its locks when an `await using` block throws', async () => {
    const work = async () => {
      await using manager = await app.locks.manager(name);
      await manager.lock(`${name}-other`);
      throw new Error('job failed');
    };
    await expect(work()).rejects.toThrow('job failed');
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
  });

  it('withLock returns the work’s result and releases every lock', async () => {
    const result = await app.locks.withLock(name, async (manager) => {
      expect(manager).toBeInstanceOf(LockManager);
      await manager.lock(`${name}-other`);
      expect(await app.locks.isLocked(name)).toBe(true);
      return 42;
    });
    expect(result).toBe(42);
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
  });

  it('withLock releases every lock when the work throws, and rethrows', async () => {
    await expect(
      app.locks.withLock(name, async (manager) => {
        await manager.lock(`${name}-other`);
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(await app.locks.isLocked(`${name}-other`)).toBe(false);
  });

  it('withLock makes the lock the current LockContext in the work and what it calls, and only there', async () => {
    const describeCurrent = async () => {
      await sleep(1);
      const { name, fencingToken, signal } = LockContext.current();
      return { name, fencingToken, aborted: signal.aborted };
    };
    const seen = await app.locks.withLock(name, async (manager) => {
      const outer = await describeCurrent();
      const inner = await app.locks.withLock(`${name}-inner`, () => describeCurrent());
      expect(await describeCurrent()).toEqual(outer);
      return { outer, inner, token: manager.fencingToken };
    });
    expect(seen.outer).toEqual({ name, fencingToken: seen.token, aborted: false });
    expect(seen.inner.name).toBe(`${name}-inner`);
    expect(seen.inner.fencingToken).toBeGreaterThan(seen.token);
    expect(() => LockContext.current()).toThrow(/outside a @WithLock method or withLock work/);
  });

  it('withLock waits for the lock with wait', async () => {
    const holder = await app.locks.getLock(name);
    setTimeout(() => void app.locks.unlock(holder), 200);
    expect(await app.locks.withLock(name, () => 'ran', { wait: 10 })).toBe('ran');
  });

  it('renew() adds 120 seconds to the main lock by default', async () => {
    const manager = await app.locks.manager(name, { expires: 30, autoRenew: false });
    const before = manager.mainLock;
    const renewed = await manager.renew();
    expect(renewed.lockedUntil!.getTime() - before.lockedUntil!.getTime()).toBeCloseTo(120_000, -1);
    expect(renewed.expiresSeconds).toBeGreaterThan(148);
    expect(manager.mainLock).toBe(renewed);
    const other = await manager.renew({ expires: 60, addTime: false });
    expect(other.expiresSeconds).toBeGreaterThan(148);
    await manager.release();
  });

  it('renew() takes a lost main lock afresh, with a new fencing token', async () => {
    const manager = await app.locks.manager(name, { expires: 0.3, autoRenew: false });
    const first = manager.fencingToken;
    await sleep(500);
    const renewed = await manager.renew({ expires: 30 });
    expect(renewed.fencingToken).toBeGreaterThan(first);
    expect(manager.fencingToken).toBe(renewed.fencingToken);
    expect(renewed.expiresSeconds).toBeGreaterThan(28);
    await expect(manager.renew(`${name}-gone`, { create: false })).rejects.toBeInstanceOf(LockNotFoundError);
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(false);
  });

  it('renews its locks by itself, so they outlive their lease while held', async () => {
    const manager = await app.locks.manager(name, { expires: 0.6 });
    await manager.lock(`${name}-other`, { expires: 0.6 });
    await sleep(1500);
    expect(manager.signal.aborted).toBe(false);
    expect(await app.locks.getLock(name).catch((e: unknown) => e)).toBeInstanceOf(LockedError);
    expect(await app.locks.tryLock(`${name}-other`)).toBeNull();
    expect(manager.mainLock.expiresSeconds).toBeGreaterThan(0.2);
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(false);
  });

  it('lets its locks expire with autoRenew: false', async () => {
    const manager = await app.locks.manager(name, { expires: 0.4, autoRenew: false });
    await sleep(700);
    expect(await app.locks.isLocked(name)).toBe(false);
    expect(manager.signal.aborted).toBe(true);
    await manager.release();
  });

  it('aborts its signal with LockLostError when someone force-releases its lock', async () => {
    const manager = await app.locks.manager(name, { expires: 0.6 });
    const aborted = new Promise<unknown>((resolve) => manager.signal.addEventListener('abort', () => resolve(manager.signal.reason)));
    await app.locks.unlock(name);
    const taker = await app.locks.getLock(name, { expires: 60 });
    const reason = await aborted;
    expect(reason).toBeInstanceOf(LockLostError);
    expect(reason).toMatchObject({ lockName: name });
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(true);
    expect((await app.locks.listLocks()).find((lock) => lock.name === name)!.fencingToken).toBe(taker.fencingToken);
  });

  it('keeps the main lock minHold seconds after it was taken', async () => {
    await app.locks.withLock(name, () => undefined, { minHold: 0.8, expires: 60 });
    expect(await app.locks.isLocked(name)).toBe(true);
    const [held] = (await app.locks.listLocks()).filter((lock) => lock.name === name);
    expect(held.expiresSeconds).toBeLessThanOrEqual(0.8);
    await sleep(1000);
    expect(await app.locks.isLocked(name)).toBe(false);
  });

  it('shutdown waits for a running withLock work, which keeps its lock until it settles', async () => {
    const isolationShutdown = uniqueName('drain');
    const other = await createLockApp(database, isolationShutdown);
    try {
      let finish!: () => void;
      let finished = false;
      const started = new Promise<void>((resolveStarted) => {
        void other.locks.withLock(
          name,
          async () => {
            resolveStarted();
            await new Promise<void>((resolve) => (finish = resolve));
            finished = true;
          },
          { expires: 0.6 },
        );
      });
      await started;
      let closed = false;
      const closing = other.close().then(() => (closed = true));
      // Longer than the lease: the lock stays held because it is still renewed while the work runs.
      await sleep(1000);
      expect(closed).toBe(false);
      const probe = await createLockApp(database, isolationShutdown);
      try {
        expect(await probe.locks.isLocked(name)).toBe(true);
        finish();
        await closing;
        expect(finished).toBe(true);
        expect(await probe.locks.isLocked(name)).toBe(false);
      } finally {
        await probe.close();
      }
    } finally {
      await dropLockTable(database, isolationShutdown);
    }
  });

  it('shutdown ends the wait of a withLock for a lock held elsewhere with LockedError, without running its work', async () => {
    const isolationShutdown = uniqueName('drain_wait');
    const other = await createLockApp(database, isolationShutdown);
    try {
      await other.locks.getLock(name, { expires: 600 });
      let ran = false;
      // A wait longer than the test's timeout: the test only ends if shutdown stops it.
      const outcome = other.locks.withLock(name, () => (ran = true), { wait: 600 }).catch((error: unknown) => error);
      await sleep(100);
      await other.close();
      expect(await outcome).toBeInstanceOf(LockedError);
      expect(ran).toBe(false);
    } finally {
      await dropLockTable(database, isolationShutdown);
    }
  });

  it('releases managed locks when the application shuts down', async () => {
    const isolationShutdown = uniqueName('shutdown');
    const other = await createLockApp(database, isolationShutdown);
    try {
      const manager = await other.locks.manager(name, { expires: 60 });
      await manager.lock(`${name}-other`);
      const kept = await other.locks.getLock(`${name}-kept`, { expires: 60 });
      await other.close();
      const probe = await createLockApp(database, isolationShutdown);
      try {
        expect(await probe.locks.isLocked(name)).toBe(false);
        expect(await probe.locks.isLocked(`${name}-other`)).toBe(false);
        // A lock from getLock belongs to its caller: it outlives the app, like django-lockmgr's.
        expect(await probe.locks.isLocked(kept)).toBe(true);
      } finally {
        await probe.close();
      }
    } finally {
      await dropLockTable(database, isolationShutdown);
    }
  });
});
