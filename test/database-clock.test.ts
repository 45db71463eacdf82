import { LockApp, sleep, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

const HOUR = 3600_000;
/** Everything but Date stays real, so the app runs normally with a wall clock that is wrong (and stopped). */
const REAL_TIMERS = [
  'hrtime',
  'nextTick',
  'performance',
  'queueMicrotask',
  'setImmediate',
  'clearImmediate',
  'setInterval',
  'clearInterval',
  'setTimeout',
  'clearTimeout',
] as const;

describeEachDatabase('Expiry by the database clock', (database) => {
  const isolation = uniqueName('clock');
  let app: LockApp;

  // Declared first so that it runs first: the app closes on real timers.
  afterAll(() => jest.useRealTimers());
  useLockApp(database, isolation, (started) => (app = started));

  it.each([
    ['an hour ahead', HOUR],
    ['an hour behind', -HOUR],
  ])('gives the same lock state to an app whose clock is %s', async (_label, skew) => {
    const name = `skew${skew}`;
    const honest = await app.locks.getLock(`${name}-honest`, { expires: 30 });
    jest.useFakeTimers({ now: Date.now() + skew, doNotFake: [...REAL_TIMERS] });
    try {
      const lock = await app.locks.getLock(name, { expires: 0.6 });
      expect(lock.expired).toBe(false);
      expect(lock.expiresSeconds).toBeGreaterThan(0.4);
      expect(lock.expiresSeconds).toBeLessThanOrEqual(0.6);
      expect(await app.locks.isLocked(name)).toBe(true);
      expect(await app.locks.tryLock(name)).toBeNull();
      expect(await app.locks.isLocked(honest)).toBe(true);
      expect(honest.expired).toBe(false);
      expect((await app.locks.listLocks()).map((l) => l.name)).toEqual(expect.arrayContaining([name, `${name}-honest`]));
      await sleep(800);
      expect(lock.expired).toBe(true);
      expect(await app.locks.isLocked(name)).toBe(false);
      expect(await app.locks.tryLock(name, { expires: 60 })).not.toBeNull();
    } finally {
      jest.useRealTimers();
    }
  });
});
