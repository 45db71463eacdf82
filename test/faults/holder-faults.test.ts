import type { HolderEvent, HolderWorkerSettings } from '../workers/holder-worker';
import { LockApp, useLockApp } from '../support/lock-app';
import { ScriptProcess } from '../support/processes';
import { describeEachDatabase, uniqueName } from '../support/test-databases';

describeEachDatabase('A holder that crashes or freezes', (database) => {
  const isolation = uniqueName('holder');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started));

  function startHolder(lockName: string, expires: number, freezeSeconds?: number): ScriptProcess {
    const settings: HolderWorkerSettings = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation, lockName, expires, freezeSeconds };
    return new ScriptProcess('workers/holder-worker.ts', [JSON.stringify(settings)]);
  }

  it('killed with SIGKILL mid-section: nobody gets the lock before its lease ends, a waiter gets it within a second after', async () => {
    const holder = startHolder('crash', 2);
    const held = await holder.nextEvent<HolderEvent & { event: 'held' }>();
    expect(held.event).toBe('held');
    await new Promise((resolve) => setTimeout(resolve, 300));
    holder.kill('SIGKILL');
    expect((await holder.finished).code).toBeNull();

    const [abandoned] = (await app.locks.listLocks()).filter((lock) => lock.name === 'crash');
    expect(abandoned.fencingToken).toBe(held.fencingToken);
    expect(await app.locks.tryLock('crash')).toBeNull();
    const taken = await app.locks.getLock('crash', { wait: 10 });
    const lateBy = taken.createdAt.getTime() - abandoned.lockedUntil!.getTime();
    expect(lateBy).toBeGreaterThanOrEqual(0);
    expect(lateBy).toBeLessThan(1000);
    expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);
  });

  it('frozen past its lease: loses the lock to a waiter, learns it on waking, and its release leaves the new holder alone', async () => {
    const holder = startHolder('frozen', 1, 2.5);
    const held = await holder.nextEvent<HolderEvent & { event: 'held' }>();
    const taken = await app.locks.getLock('frozen', { wait: 10, expires: 60 });
    expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);

    expect(await holder.nextEvent()).toEqual({ event: 'woke', aborted: true, reason: 'LockLostError', stillHolds: false });
    expect(await holder.nextEvent()).toEqual({ event: 'released' });
    expect((await holder.finished).code).toBe(0);
    const [current] = (await app.locks.listLocks()).filter((lock) => lock.name === 'frozen');
    expect(current.fencingToken).toBe(taken.fencingToken);
    expect(current.lockedUntil).toEqual(taken.lockedUntil);
  });
});
