import { Injectable } from '@nestjs/common';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { LockContext, LockedError, LOCKMGR_CHANNELS, LockRenewedMessage, WithLock } from '../lib';
import { MAX_SECONDS } from '../lib/validation';
import { deferred, LockApp, lockTestingModule, sleep, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

const DAY = 86400;

/** Counts the renewals of `name` published while `during` runs. */
async function renewalsOf(name: string, during: () => Promise<void>): Promise<number> {
  let renewals = 0;
  const count = (message: unknown) => {
    if ((message as LockRenewedMessage).name === name) renewals++;
  };
  subscribe(LOCKMGR_CHANNELS.renewed, count);
  try {
    await during();
  } finally {
    unsubscribe(LOCKMGR_CHANNELS.renewed, count);
  }
  return renewals;
}

/** Holds the app's next renewal before it reaches the database until `send()`; `reached` settles once it is held. */
function holdUpNextRenewal(app: LockApp): { reached: Promise<void>; send: () => void; restore: () => void } {
  const reached = deferred();
  const sent = deferred();
  const renew = app.dialect.renew.bind(app.dialect);
  const spy = jest.spyOn(app.dialect, 'renew').mockImplementationOnce(async (request) => {
    reached.resolve();
    await sent.promise;
    return renew(request);
  });
  return { reached: reached.promise, send: () => sent.resolve(), restore: () => spy.mockRestore() };
}

@Injectable()
class NightlyJob {
  aborted: boolean | undefined;

  @WithLock('nightly', { expires: 30 * DAY })
  async run(): Promise<void> {
    await sleep(300);
    this.aborted = LockContext.current().signal.aborted;
  }
}

describeEachDatabase('LockManager at the edges', (database) => {
  const isolation = uniqueName('manager_edges');
  let app: LockApp;
  let name: string;
  let counter = 0;

  useLockApp(database, isolation, (started) => (app = started));
  beforeEach(() => {
    name = `edge-${++counter}`;
  });

  describe('leases longer than a Node timer can wait', () => {
    it('withLock keeps a 30-day lease for its whole run, then releases it', async () => {
      const aborted = await app.locks.withLock(
        name,
        async (manager) => {
          await sleep(300);
          return manager.signal.aborted;
        },
        { expires: 30 * DAY },
      );
      expect(aborted).toBe(false);
      expect(await app.locks.isLocked(name)).toBe(false);
    });

    it('a manager with the longest lease the API accepts neither loses it nor renews it over and over', async () => {
      let manager!: Awaited<ReturnType<LockApp['locks']['manager']>>;
      const renewals = await renewalsOf(name, async () => {
        manager = await app.locks.manager(name, { expires: MAX_SECONDS });
        expect(await manager.lock(`${name}-second`, { expires: 100 * DAY })).toBe(true);
        await sleep(300);
      });
      expect(renewals).toBe(0);
      expect(manager.signal.aborted).toBe(false);
      expect(await app.locks.isLocked(name)).toBe(true);
      await manager.release();
      expect(await app.locks.isLocked(name)).toBe(false);
      expect(await app.locks.isLocked(`${name}-second`)).toBe(false);
    });

    it('@WithLock with a 30-day lease runs with its lock and lets it go', async () => {
      const moduleRef = await lockTestingModule(database, isolation, {}, { providers: [NightlyJob] }).compile();
      await moduleRef.init();
      try {
        const job = moduleRef.get(NightlyJob);
        await job.run();
        expect(job.aborted).toBe(false);
        expect(await app.locks.isLocked('nightly')).toBe(false);
      } finally {
        await moduleRef.close();
      }
    });
  });

  describe('a manager released while a call of it is under way', () => {
    it('ends a lock() that waits, which rejects, and never takes the lock later', async () => {
      const other = await app.locks.getLock(`${name}-b`, { expires: 60 });
      const manager = await app.locks.manager(name);
      const pending = manager.lock(`${name}-b`, { wait: 10 });
      pending.catch(() => undefined);
      await sleep(100);
      await manager.release();
      await expect(pending).rejects.toThrow(/already released/);
      expect(await app.locks.unlock(other)).toBe(true);
      await sleep(300);
      expect(await app.locks.isLocked(`${name}-b`)).toBe(false);
    });

    it('lets go at once of a lock whose acquisition answers after the release, and the call rejects', async () => {
      const manager = await app.locks.manager(name);
      const answer = deferred();
      const acquire = app.dialect.acquire.bind(app.dialect);
      const heldUp = jest.spyOn(app.dialect, 'acquire').mockImplementationOnce(async (request) => {
        const result = await acquire(request);
        await answer.promise;
        return result;
      });
      try {
        const pending = manager.lock(`${name}-c`);
        pending.catch(() => undefined);
        await sleep(100);
        const released = manager.release();
        await sleep(100);
        answer.resolve();
        await released;
        await expect(pending).rejects.toThrow(/already released/);
        // The late lock was released with the others, not kept until its lease ends.
        expect(await app.locks.isLocked(`${name}-c`)).toBe(false);
      } finally {
        heldUp.mockRestore();
      }
    });

    it('waits for a renew() under way, which rejects, and the release is the last word', async () => {
      const manager = await app.locks.manager(name, { expires: 60 });
      const renewal = holdUpNextRenewal(app);
      try {
        const pending = manager.renew({ expires: 600 });
        pending.catch(() => undefined);
        await renewal.reached;
        const released = manager.release();
        await sleep(100);
        renewal.send();
        await released;
        await expect(pending).rejects.toThrow(/already released/);
        expect(await app.locks.isLocked(name)).toBe(false);
      } finally {
        renewal.restore();
      }
    });
  });

  it('minHold is not undone by an automatic renewal that was on its way when the manager was released', async () => {
    const manager = await app.locks.manager(name, { expires: 3, minHold: 1.5 });
    const renewal = holdUpNextRenewal(app);
    try {
      // The first automatic renewal comes after a third of the lease.
      await renewal.reached;
      const released = manager.release();
      await sleep(100);
      renewal.send();
      await released;
      // What is left of minHold is under half a second; the renewal would have kept the lock for 3 s.
      await sleep(800);
      expect(await app.locks.isLocked(name)).toBe(false);
    } finally {
      renewal.restore();
    }
  });

  it("refuses, as django-lockmgr does, to lock a name the manager holds: its main lock or another", async () => {
    const manager = await app.locks.manager(name, { expires: 60 });
    await expect(manager.lock(name)).rejects.toBeInstanceOf(LockedError);
    expect(await manager.lock(name, { ret: true })).toBe(false);
    expect(await manager.lock(`${name}-other`)).toBe(true);
    const error = await manager.lock(`${name}-other`, { wait: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockedError);
    expect((error as LockedError).lockedBy).toBe(manager.locks[1].lockedBy);
    expect(manager.locks.map((lock) => lock.name)).toEqual([name, `${name}-other`]);
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(false);
  });

  it('takes its own name afresh when its lock was released behind its back, as the database sees it free', async () => {
    const manager = await app.locks.manager(name, { expires: 60 });
    const first = manager.mainLock;
    expect(await app.locks.unlock(first)).toBe(true);
    expect(await manager.lock(name)).toBe(true);
    expect(manager.mainLock.fencingToken).toBeGreaterThan(first.fencingToken);
    expect(await app.locks.isLocked(name)).toBe(true);
    await manager.release();
    expect(await app.locks.isLocked(name)).toBe(false);
  });

  describe('a manager that does not renew', () => {
    it('is told before its lease ends, yet keeps the lock for the whole lease it chose', async () => {
      const manager = await app.locks.manager(name, { expires: 1, autoRenew: false });
      await new Promise((resolve) => manager.signal.addEventListener('abort', resolve, { once: true }));
      // Told a fifth of the lease early: the lock is still its own, and nobody else can take it yet.
      expect(await app.locks.tryLock(name)).toBeNull();
      await sleep(400);
      expect(await app.locks.tryLock(name)).not.toBeNull();
      await manager.release();
    });

    it('releases at release() a lock it was told it lost but still owns, because someone extended it by name', async () => {
      const manager = await app.locks.manager(name, { expires: 0.5, autoRenew: false });
      await app.locks.setLock(name, { timeout: 30 });
      await new Promise((resolve) => manager.signal.addEventListener('abort', resolve, { once: true }));
      expect(await app.locks.isLocked(name)).toBe(true);
      await manager.release();
      expect(await app.locks.isLocked(name)).toBe(false);
    });
  });
});
