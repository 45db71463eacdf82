import { LockEntity } from '../../lib';
import { LockApp, sleep, useLockApp } from '../support/lock-app';
import { describeEachDatabase, uniqueName } from '../support/test-databases';

const CALLS = 500;
const POOL = 10;

describeEachDatabase('Pool pressure', (database) => {
  const isolation = uniqueName('pressure');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started), { poolSize: POOL });

  it(`finishes ${CALLS} concurrent getLock and withLock calls through a pool of ${POOL}`, async () => {
    const inside = new Map<string, number>();
    let overlaps = 0;
    const calls = Array.from({ length: CALLS }, (_, i) =>
      i % 2
        ? app.locks.getLock(`free-${i}`, { expires: 60 }).then((lock) => app.locks.unlock(lock))
        : app.locks.withLock(
            `shared-${i % 20}`,
            async (manager) => {
              const name = manager.mainLock.name;
              inside.set(name, (inside.get(name) ?? 0) + 1);
              if (inside.get(name)! > 1) overlaps++;
              await sleep(1);
              inside.set(name, inside.get(name)! - 1);
              return true;
            },
            { wait: 60 },
          ),
    );
    const outcomes = await Promise.all(calls);
    expect(outcomes.every((outcome) => outcome === true)).toBe(true);
    expect(overlaps).toBe(0);
    expect((await app.locks.listLocks()).filter((lock) => /^(free|shared)-/.test(lock.name))).toEqual([]);
  });

  if (database.kind !== 'sqlite') {
    it('never waits for, nor joins, the app’s own transactions, even when they hold every connection of its pool', async () => {
      const transactions = Array.from({ length: 100 }, (_, i) =>
        app.dataSource
          .transaction(async (manager) => {
            await manager.query('SELECT 1');
            const lock = await app.locks.getLock(`in-transaction-${i}`, { expires: 60 });
            await app.locks.withLock(`nested-${i}`, () => undefined);
            if (i % 2) throw new Error('roll back');
            return lock;
          })
          .catch((error: Error) => error),
      );
      const outcomes = await Promise.all(transactions);
      expect(outcomes.filter((outcome) => outcome instanceof LockEntity)).toHaveLength(50);
      expect(outcomes.filter((outcome) => outcome instanceof Error && outcome.message === 'roll back')).toHaveLength(50);
      const held = (await app.locks.listLocks()).filter((lock) => lock.name.startsWith('in-transaction-'));
      expect(held).toHaveLength(100);
    });
  }
});
