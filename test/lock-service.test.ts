import { LockedError, LockEntity, LockFailError, LockNotFoundError } from '../lib';
import { createLockApp, dropLockTable, LockApp, sleep, tableRows, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

describeEachDatabase('LockService', (database) => {
  const isolation = uniqueName('service');
  let app: LockApp;
  let name: string;
  let counter = 0;

  useLockApp(database, isolation, (started) => (app = started), { defaultExpires: 30, lockedBy: 'test-host' });
  beforeEach(() => {
    name = `lock-${++counter}`;
  });

  describe('getLock, isLocked, unlock', () => {
    it('returns a handle describing the lock it took', async () => {
      const lock = await app.locks.getLock(name, { expires: 60, lockProcess: 4242 });
      expect(lock).toBeInstanceOf(LockEntity);
      expect(lock).toMatchObject({ name, lockedBy: 'test-host', lockProcess: 4242 });
      expect(lock.owner).toMatch(/^[0-9a-f-]{36}$/);
      expect(lock.expiresSeconds).toBeGreaterThan(58);
      expect(lock.expiresSeconds).toBeLessThanOrEqual(60);
      expect(lock.expired).toBe(false);
      expect(lock.lockedUntil!.getTime() - lock.createdAt.getTime()).toBeCloseTo(60_000, -2);
      expect(await app.locks.isLocked(name)).toBe(true);
      expect(await app.locks.isLocked(lock)).toBe(true);
    });

    it('defaults to the module lease, the host name and the process id', async () => {
      const lock = await app.locks.getLock(name);
      expect(lock.lockProcess).toBe(process.pid);
      expect(lock.lockedBy).toBe('test-host');
      expect(lock.expiresSeconds).toBeGreaterThan(28);
      expect(lock.expiresSeconds).toBeLessThanOrEqual(30);
    });

    it('throws LockedError naming the lock and its holder while it is held', async () => {
      const lock = await app.locks.getLock(name, { expires: 60, lockedBy: 'worker-7' });
      const error = await app.locks.getLock(name).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockedError);
      expect(error).toMatchObject({ lockName: name, lockedBy: 'worker-7', lockedUntil: lock.lockedUntil });
      expect((error as Error).message).toContain(`"${name}" is held by worker-7 until`);
    });

    it('tryLock resolves to null instead of throwing', async () => {
      await app.locks.getLock(name);
      expect(await app.locks.tryLock(name)).toBeNull();
      expect(await app.locks.tryLock(`${name}-free`)).toBeInstanceOf(LockEntity);
    });

    it('unlock through the handle releases, and reports whether it did', async () => {
      const lock = await app.locks.getLock(name);
      expect(await app.locks.unlock(lock)).toBe(true);
      expect(await app.locks.isLocked(name)).toBe(false);
      expect(await app.locks.unlock(lock)).toBe(false);
      expect(await app.locks.getLock(name)).toBeInstanceOf(LockEntity);
    });

    it('unlock by name force-releases whoever holds the lock', async () => {
      await app.locks.getLock(name);
      expect(await app.locks.unlock(name)).toBe(true);
      expect(await app.locks.isLocked(name)).toBe(false);
      expect(await app.locks.unlock(name)).toBe(false);
    });

    it('treats lock names as exact strings: case, spaces and symbols matter', async () => {
      const names = [name.toUpperCase(), `${name} `, `${name}%`, `${name}_`, `"${name}'`, `${name}\\`, `${name}✓😀`];
      await app.locks.getLock(name);
      for (const other of names) {
        const lock = await app.locks.getLock(other);
        expect(lock.name).toBe(other);
      }
      const listed = (await app.locks.listLocks()).map((lock) => lock.name);
      expect(listed).toEqual(expect.arrayContaining([name, ...names]));
    });

    it('keeps the owner token out of the serialised lock', async () => {
      const lock = await app.locks.getLock(name);
      const json = JSON.parse(JSON.stringify(lock));
      expect(json).not.toHaveProperty('owner');
      expect(json).toMatchObject({ name, fencingToken: lock.fencingToken, lockedBy: 'test-host' });
    });
  });

  describe('expiry', () => {
    it('frees a lock whose lease ran out, for every operation, before any clean-up', async () => {
      const lock = await app.locks.getLock(name, { expires: 0.4 });
      await sleep(600);
      expect(lock.expired).toBe(true);
      expect(await app.locks.isLocked(name)).toBe(false);
      expect((await app.locks.listLocks()).map((l) => l.name)).not.toContain(name);
      expect(await app.locks.unlock(name)).toBe(false);
      const next = await app.locks.getLock(name, { expires: 60 });
      expect(next.fencingToken).toBeGreaterThan(lock.fencingToken);
    });

    it.each([0, null])('never expires a lock taken with expires: %p', async (expires) => {
      const lock = await app.locks.getLock(name, { expires });
      expect(lock.lockedUntil).toBeNull();
      expect(lock.expiresSeconds).toBeNull();
      expect(lock.expired).toBe(false);
      await sleep(300);
      expect(await app.locks.isLocked(name)).toBe(true);
      expect(await app.locks.cleanLocks()).toBeGreaterThanOrEqual(0);
      expect(await app.locks.isLocked(name)).toBe(true);
      await expect(app.locks.getLock(name)).rejects.toThrow(/no expiry/);
    });

    it('uses defaultExpires: 0 for locks that never expire', async () => {
      const isolationForever = uniqueName('forever');
      const forever = await createLockApp(database, isolationForever, { defaultExpires: 0 });
      try {
        expect((await forever.locks.getLock(name)).lockedUntil).toBeNull();
      } finally {
        await forever.close();
        await dropLockTable(database, isolationForever);
      }
    });
  });

  describe('renewLock', () => {
    it('extends to now + expires, and never shortens', async () => {
      const lock = await app.locks.getLock(name, { expires: 100 });
      const shorter = await app.locks.renewLock(lock, { expires: 10 });
      expect(shorter.expiresSeconds).toBeGreaterThan(98);
      expect(shorter.lockedUntil).toEqual(lock.lockedUntil);
      const longer = await app.locks.renewLock(lock, { expires: 200 });
      expect(longer.expiresSeconds).toBeGreaterThan(198);
      expect(longer.fencingToken).toBe(lock.fencingToken);
      expect(longer.owner).toBe(lock.owner);
    });

    it('adds time to the current expiry with addTime', async () => {
      const lock = await app.locks.getLock(name, { expires: 10 });
      const renewed = await app.locks.renewLock(lock, { expires: 20, addTime: true });
      expect(renewed.lockedUntil!.getTime() - lock.lockedUntil!.getTime()).toBeCloseTo(20_000, -1);
      expect(renewed.expiresSeconds).toBeGreaterThan(28);
    });

    it('renews a never-expiring lock without giving it an expiry', async () => {
      const lock = await app.locks.getLock(name, { expires: 0 });
      expect((await app.locks.renewLock(lock, { expires: 30 })).lockedUntil).toBeNull();
      expect((await app.locks.renewLock(name, { expires: 30, addTime: true })).lockedUntil).toBeNull();
      expect(await app.locks.isLocked(name)).toBe(true);
    });

    it('makes a lock never expire when renewed with expires: 0', async () => {
      const lock = await app.locks.getLock(name, { expires: 10 });
      expect((await app.locks.renewLock(lock, { expires: 0 })).lockedUntil).toBeNull();
    });

    it('renews by name whoever holds the lock', async () => {
      const lock = await app.locks.getLock(name, { expires: 10 });
      const renewed = await app.locks.renewLock(name, { expires: 50 });
      expect(renewed).toMatchObject({ owner: null, fencingToken: lock.fencingToken });
      expect(renewed.expiresSeconds).toBeGreaterThan(48);
      expect(await app.locks.unlock(lock)).toBe(true);
    });

    it('throws LockNotFoundError for a missing or expired lock', async () => {
      await expect(app.locks.renewLock(name)).rejects.toBeInstanceOf(LockNotFoundError);
      const lock = await app.locks.getLock(name, { expires: 0.3 });
      await sleep(500);
      await expect(app.locks.renewLock(lock)).rejects.toThrow(LockNotFoundError);
      await expect(app.locks.renewLock(name)).rejects.toThrow(`Lock "${name}" is not held`);
    });

    it('takes a missing or expired lock afresh with create', async () => {
      const created = await app.locks.renewLock(name, { expires: 40, create: true, lockedBy: 'renewer' });
      expect(created).toMatchObject({ name, lockedBy: 'renewer' });
      expect(created.expiresSeconds).toBeGreaterThan(38);
      const lock = await app.locks.getLock(`${name}-b`, { expires: 0.3 });
      await sleep(500);
      const recreated = await app.locks.renewLock(lock, { expires: 40, create: true });
      expect(recreated.fencingToken).toBeGreaterThan(lock.fencingToken);
      expect(recreated.owner).not.toBe(lock.owner);
    });
  });

  describe('a stale handle (its lock expired and another holder took the name)', () => {
    it('can neither unlock nor renew the new holder’s lock', async () => {
      const stale = await app.locks.getLock(name, { expires: 0.3 });
      await sleep(500);
      const current = await app.locks.getLock(name, { expires: 60 });
      expect(await app.locks.unlock(stale)).toBe(false);
      await expect(app.locks.renewLock(stale, { expires: 600 })).rejects.toBeInstanceOf(LockNotFoundError);
      await expect(app.locks.renewLock(stale, { expires: 600, create: true })).rejects.toBeInstanceOf(LockedError);
      const [held] = (await app.locks.listLocks()).filter((lock) => lock.name === name);
      expect(held.fencingToken).toBe(current.fencingToken);
      expect(held.lockedUntil).toEqual(current.lockedUntil);
    });
  });

  describe('waiting', () => {
    it('gets the lock once its holder releases it', async () => {
      const holder = await app.locks.getLock(name);
      const started = performance.now();
      setTimeout(() => void app.locks.unlock(holder), 300);
      const waiter = await app.locks.getLock(name, { wait: 10 });
      expect(waiter.fencingToken).toBeGreaterThan(holder.fencingToken);
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    });

    it('gets the lock once its holder’s lease ends', async () => {
      const holder = await app.locks.getLock(name, { expires: 0.5 });
      const waiter = await app.locks.getLock(name, { wait: 10 });
      expect(waiter.fencingToken).toBeGreaterThan(holder.fencingToken);
      expect(waiter.createdAt.getTime()).toBeGreaterThanOrEqual(holder.lockedUntil!.getTime());
    });

    it('gives up after wait seconds, any fraction of a second', async () => {
      await app.locks.getLock(name);
      const started = performance.now();
      await expect(app.locks.getLock(name, { wait: 0.7 })).rejects.toBeInstanceOf(LockedError);
      const waited = performance.now() - started;
      expect(waited).toBeGreaterThanOrEqual(690);
      expect(waited).toBeLessThan(3000);
      expect(await app.locks.tryLock(name, { wait: 0.2 })).toBeNull();
    });

    it('stops waiting when its signal aborts, with the signal’s reason', async () => {
      await app.locks.getLock(name);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('shutting down')), 200);
      await expect(app.locks.getLock(name, { wait: 30, signal: controller.signal })).rejects.toThrow('shutting down');
      await expect(app.locks.getLock(`${name}-x`, { signal: controller.signal })).rejects.toThrow('shutting down');
    });
  });

  describe('setLock', () => {
    it('creates, then renews, with django-lockmgr’s counts and statuses', async () => {
      const names = [`${name}-hello`, `${name}-world`];
      const first = await app.locks.setLock(names, { timeout: 50 });
      expect(first.counts).toEqual({ created: 2, renewed: 0, skipCreate: 0, skipRenew: 0 });
      expect(first.statuses).toEqual([
        [names[0], { wasLocked: false, status: 'create', locked: true }],
        [names[1], { wasLocked: false, status: 'create', locked: true }],
      ]);
      expect(first.locks.map((lock) => lock.name)).toEqual(names);
      expect(first.locks[0].expiresSeconds).toBeGreaterThan(48);

      const second = await app.locks.setLock(names, { timeout: 100 });
      expect(second.counts).toEqual({ created: 0, renewed: 2, skipCreate: 0, skipRenew: 0 });
      expect(second.statuses[1]).toEqual([names[1], { wasLocked: true, status: 'extend', locked: true }]);
      expect(second.locks[1].expiresSeconds).toBeGreaterThan(98);
      expect(second.locks[1].fencingToken).toBe(first.locks[1].fencingToken);
    });

    it('skips existing locks with renew: false and free names with create: false', async () => {
      await app.locks.getLock(name, { expires: 60 });
      const result = await app.locks.setLock([name, `${name}-free`], { renew: false, create: false, timeout: 500 });
      expect(result.counts).toEqual({ created: 0, renewed: 0, skipCreate: 1, skipRenew: 1 });
      expect(result.statuses).toEqual([
        [name, { wasLocked: true, status: 'skip', locked: true }],
        [`${name}-free`, { wasLocked: false, status: 'skip', locked: false }],
      ]);
      expect(result.locks.map((lock) => lock.name)).toEqual([name]);
      expect(result.locks[0].expiresSeconds).toBeLessThanOrEqual(60);
      expect(await app.locks.isLocked(`${name}-free`)).toBe(false);
    });

    it('with fail: true is all or nothing', async () => {
      const existing = await app.locks.getLock(`${name}-b`, { lockedBy: 'other-host' });
      const before = await tableRows(app, isolation);
      const error = await app.locks
        .setLock([`${name}-a`, `${name}-b`, `${name}-c`], { fail: true })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LockFailError);
      expect(error).toBeInstanceOf(LockedError);
      expect((error as LockFailError).lock).toMatchObject({ name: `${name}-b`, fencingToken: existing.fencingToken, lockedBy: 'other-host' });
      expect(await app.locks.isLocked(`${name}-a`)).toBe(false);
      expect(await app.locks.isLocked(`${name}-c`)).toBe(false);
      expect(await tableRows(app, isolation)).toEqual(before);
    });
  });

  describe('cleanLocks and listLocks', () => {
    it('deletes expired rows only, and lists live locks in name order', async () => {
      await app.locks.cleanLocks();
      await app.locks.getLock(`${name}-b-short`, { expires: 0.3 });
      await app.locks.getLock(`${name}-c-short`, { expires: 0.3 });
      await app.locks.getLock(`${name}-a-live`, { expires: 60 });
      await app.locks.getLock(`${name}-d-forever`, { expires: 0 });
      await sleep(500);
      const listed = (await app.locks.listLocks()).map((lock) => lock.name).filter((n) => n.startsWith(name));
      expect(listed).toEqual([`${name}-a-live`, `${name}-d-forever`]);
      expect(await app.locks.cleanLocks()).toBe(2);
      const rows = (await tableRows(app, isolation)) as { name: string }[];
      expect(rows.map((row) => row.name).filter((n) => n.startsWith(name))).toEqual([`${name}-a-live`, `${name}-d-forever`]);
      expect(await app.locks.cleanLocks()).toBe(0);
    });
  });
});
