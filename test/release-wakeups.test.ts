import { LockedError } from '../lib';
import { mysqlWaitFlag } from '../lib/dialects/mysql/mysql-statements';
import { mysqlNames } from '../lib/dialects/mysql/mysql.schema';
import type { HandoffWaiterAcquired, HandoffWaiterSettings, HandoffWaiterWaiting } from './workers/handoff-waiter';
import { LibraryTimers } from './support/library-timers';
import { createLockApp, LockApp, sleep, until, useLockApp } from './support/lock-app';
import { ScriptProcess } from './support/processes';
import { describeOnDatabase, testDatabase, uniqueName } from './support/test-databases';

/** Waiters here poll at most every 5 seconds: a few seconds into a wait, their next attempt is seconds away. */
const POLL_INTERVAL = 5;
/** How long the holder keeps its locks before it lets go: long enough for the waiters' polls to have backed off. */
const HELD_MS = 8000;
/** A hand-off this quick comes from a wake-up: a waiter's next poll is then 1.25 to 5 seconds away (the rest of a 2.5 to 5 s pause). */
const WOKEN_WITHIN_MS = 1000;

const now = () => performance.timeOrigin + performance.now();

for (const kind of ['mysql', 'sqlite'] as const) {
  describeOnDatabase(testDatabase(kind), 'Releases that wake waiters of other processes', (database) => {
    const isolation = uniqueName('wakeups');
    let holder: LockApp;

    useLockApp(database, isolation, (app) => (holder = app));

    /**
     * Whether the app of this process waits for `name` in a way another process's release will end: a
     * watch on the SQLite file's log, or the named lock the release looks up on MariaDB (null if none).
     */
    async function watcherOf(name: string): Promise<number | string | null> {
      if (kind === 'sqlite') return process.getActiveResourcesInfo().includes('FSEventWrap') ? 'watching the log' : null;
      const [row] = await holder.dataSource.query(`SELECT IS_USED_LOCK(${mysqlWaitFlag(mysqlNames(isolation).table, '?')}) AS thread`, [name]);
      return row.thread === null ? null : Number(row.thread);
    }

    it('hands locks to another process within a second of their release, long before its next poll: three locks, one of them waited for twice', async () => {
      const names = ['first', 'second', 'third'];
      const held = await Promise.all(names.map((name) => holder.locks.getLock(name, { expires: 0 })));
      const settings: HandoffWaiterSettings = {
        dataSourceOptions: database.dataSourceOptions(isolation),
        tableName: isolation,
        lockNames: [...names, 'third'],
        wait: 30,
        pollInterval: POLL_INTERVAL,
      };
      const waiter = new ScriptProcess('workers/handoff-waiter.ts', [JSON.stringify(settings)]);
      await waiter.nextEvent<HandoffWaiterWaiting>();
      await sleep(HELD_MS);
      const releasedAt = new Map<string, number>();
      for (const lock of held) {
        releasedAt.set(lock.name, now());
        expect(await holder.locks.unlock(lock)).toBe(true);
        await sleep(300);
      }
      const acquired = await Promise.all(settings.lockNames.map(() => waiter.nextEvent<HandoffWaiterAcquired>()));
      expect(await waiter.finished).toMatchObject({ code: 0, stderr: '' });
      expect(acquired.map(({ name }) => name).sort()).toEqual(settings.lockNames.sort());
      const slow = acquired.map(({ name, at }) => ({ name, afterReleaseMs: at - releasedAt.get(name)! })).filter(({ afterReleaseMs }) => afterReleaseMs >= WOKEN_WITHIN_MS);
      expect(slow).toEqual([]);
    });

    it('leaves nothing behind when a wait is aborted or runs out: no watch, no named lock, no timer of the library', async () => {
      const timers = new LibraryTimers().start();
      try {
        const waiterApp = await createLockApp(database, isolation, { pollInterval: POLL_INTERVAL });
        try {
          await holder.locks.getLock('left-behind', { expires: 0 });
          const aborted = new AbortController();
          const abortedWait = waiterApp.locks.getLock('left-behind', { wait: 30, signal: aborted.signal });
          // Settled below, or when the app closes if the test fails before.
          abortedWait.catch(() => undefined);
          await until(async () => (await watcherOf('left-behind')) !== null);
          aborted.abort(new Error('no longer needed'));
          await expect(abortedWait).rejects.toThrow('no longer needed');
          await until(async () => (await watcherOf('left-behind')) === null);

          const timedOutWait = waiterApp.locks.getLock('left-behind', { wait: 1.5 });
          timedOutWait.catch(() => undefined);
          await until(async () => (await watcherOf('left-behind')) !== null);
          await expect(timedOutWait).rejects.toBeInstanceOf(LockedError);
          await until(async () => (await watcherOf('left-behind')) === null);
        } finally {
          await waiterApp.close();
        }
        expect(timers.stillPending).toEqual([]);
      } finally {
        timers.stop();
      }
    });

    if (kind === 'mysql') {
      it('keeps waking its waiters after its watching connection is killed, on a new connection', async () => {
        const waiterApp = await createLockApp(database, isolation, { pollInterval: POLL_INTERVAL });
        try {
          const held = await holder.locks.getLock('reconnected', { expires: 0 });
          const wait = waiterApp.locks.getLock('reconnected', { wait: 30 });
          await until(async () => (await watcherOf('reconnected')) !== null);
          const first = await watcherOf('reconnected');
          await holder.dataSource.query(`KILL CONNECTION ${Number(first)}`);
          await until(async () => ![null, first].includes(await watcherOf('reconnected')));
          await sleep(HELD_MS);
          const releasedAt = now();
          await holder.locks.unlock(held);
          const taken = await wait;
          expect(now() - releasedAt).toBeLessThan(WOKEN_WITHIN_MS);
          expect(taken.fencingToken).toBeGreaterThan(held.fencingToken);
        } finally {
          await waiterApp.close();
        }
      });
    }
  });
}
