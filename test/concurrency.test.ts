import { LockedError, LockEntity, LockFailError } from '../lib';
import { LockApp, sleep, useLockApps } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

/** Four app instances on one lock table, each with its own connections: the cluster a lock must serve. */
const INSTANCES = 4;
const CALLS_PER_INSTANCE = 4;

describeEachDatabase('Concurrent acquirers', (database) => {
  const isolation = uniqueName('race');
  let apps: LockApp[];

  useLockApps(database, isolation, INSTANCES, (started) => (apps = started));

  async function race(name: string, options = {}): Promise<PromiseSettledResult<LockEntity>[]> {
    const calls = apps.flatMap((app) => Array.from({ length: CALLS_PER_INSTANCE }, () => app.locks.getLock(name, options)));
    return Promise.allSettled(calls);
  }

  function expectOneWinner(outcomes: PromiseSettledResult<unknown>[]) {
    const winners = outcomes.filter((outcome) => outcome.status === 'fulfilled');
    const losers = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(INSTANCES * CALLS_PER_INSTANCE - 1);
    for (const reason of losers) expect(reason).toBeInstanceOf(LockedError);
  }

  it('of one free name: exactly one wins, every other gets LockedError', async () => {
    for (let round = 0; round < 15; round++) expectOneWinner(await race(`free-${round}`));
  });

  it('of one name released a moment before: exactly one wins, every other gets LockedError', async () => {
    // A deleted row lingers in the index until it is purged: inserting its name again is where
    // concurrent inserters meet on gap locks (InnoDB deadlocks them).
    for (let round = 0; round < 15; round++) {
      const name = `released-${round}`;
      await apps[0].locks.unlock(await apps[0].locks.getLock(name));
      expectOneWinner(await race(name));
    }
  });

  // SQLite has one writer per file: a transaction this process held open would block the process itself.
  if (database.kind !== 'sqlite') {
    it('of one name a failing setLock created, then rolled back while they waited: exactly one wins', async () => {
      // When the insert is rolled back, the waiters all insert at once: InnoDB deadlocks them on gap locks.
      const [app, other] = apps;
      await app.locks.getLock('zz-held', { expires: 60 });
      for (let round = 0; round < 5; round++) {
        const name = `rolled-back-${round}`;
        // A row lock on the held name, so that setLock waits there after it has inserted `name`.
        const blocker = app.dataSource.createQueryRunner();
        await blocker.startTransaction();
        const parameter = database.kind === 'postgres' ? '$1' : '?';
        await blocker.query(`SELECT name FROM ${app.dataSource.driver.escape(isolation)} WHERE name = ${parameter} FOR UPDATE`, ['zz-held']);
        const failing = other.locks.setLock([name, 'zz-held'], { fail: true }).catch((error: unknown) => error);
        await sleep(100);
        const outcomes = race(name);
        await sleep(100);
        await blocker.commitTransaction();
        await blocker.release();
        expect(await failing).toBeInstanceOf(LockFailError);
        expectOneWinner(await outcomes);
      }
    });
  }

  it('of one expired name: exactly one takes it over', async () => {
    for (let round = 0; round < 5; round++) {
      const name = `expired-${round}`;
      await apps[0].locks.getLock(name, { expires: 0.2 });
      await sleep(300);
      expectOneWinner(await race(name));
    }
  });

  it('waiting on one name: each gets it in turn, one at a time', async () => {
    let inside = 0;
    let most = 0;
    const holders = apps.flatMap((app) =>
      Array.from({ length: 2 }, () =>
        app.locks.withLock(
          'queue',
          async () => {
            most = Math.max(most, ++inside);
            await sleep(20);
            inside--;
          },
          { wait: 30 },
        ),
      ),
    );
    await Promise.all(holders);
    expect(most).toBe(1);
  });

  it('hold a lock taken inside a caller’s transaction that rolls back', async () => {
    const [app] = apps;
    const rollback = app.dataSource.transaction(async (manager) => {
      await app.locks.getLock('in-transaction', { expires: 60 });
      await manager.query('SELECT 1');
      throw new Error('roll back');
    });
    await expect(rollback).rejects.toThrow('roll back');
    expect(await apps[1].locks.isLocked('in-transaction')).toBe(true);
    expect(await app.locks.unlock('in-transaction')).toBe(true);
  });
});
