import type { LockEntity } from '../../lib';
import { holdRow, LockApp, sleep, until, useLockApps } from '../support/lock-app';
import { describeOnDatabase, testDatabase, uniqueName } from '../support/test-databases';

const OPERATION_TIMEOUT = 2;
const WORKERS = 6;
const LOAD_MS = 3000;

/** Every row of the table, expired or not, with its owner token: a lock nobody holds a handle to shows here. */
async function rowOwners(app: LockApp, table: string): Promise<{ name: string; owner: string }[]> {
  return app.dataSource.query(`SELECT name, owner FROM ${app.dataSource.driver.escape(table)} ORDER BY name`);
}

async function expire(app: LockApp, ...names: string[]): Promise<void> {
  for (const name of names) await app.locks.getLock(name, { expires: 0.1 });
  await until(async () => (await app.locks.listLocks()).every((lock) => !names.includes(lock.name)));
}

for (const kind of ['postgres', 'mysql'] as const) {
  describeOnDatabase(testDatabase(kind), 'The clean-up beside a transaction holding a live lock’s row', (database) => {
    const isolation = uniqueName('cleanup_contention');
    let apps: LockApp[];

    useLockApps(database, isolation, 2, (started) => (apps = started), { operationTimeout: OPERATION_TIMEOUT });

    it('deletes the expired rows and lets an acquirer take an expired name at once, leaving no lock nobody holds', async () => {
      const [app] = apps;
      await expire(app, 'expired-taken', 'expired-left');
      const live = await app.locks.getLock('live', { expires: 60 });
      const { letGo } = await holdRow(app, isolation, 'live');
      let deleted: number;
      let taken: LockEntity | null;
      try {
        // The clean-up starts first, and the acquirer's claim of an expired row it may be deleting follows.
        const cleaning = app.locks.cleanLocks();
        [deleted, taken] = await Promise.all([cleaning, app.locks.tryLock('expired-taken')]);
        // Held past the operation timeout: a statement still waiting on the server would commit once it ends.
        await sleep(OPERATION_TIMEOUT * 1000);
      } finally {
        await letGo();
      }
      expect(taken).not.toBeNull();
      // 'expired-left' at least; 'expired-taken' too when the clean-up reached it before the acquirer.
      expect(deleted).toBeGreaterThanOrEqual(1);
      await sleep(200);
      expect(await rowOwners(app, isolation)).toEqual([
        { name: 'expired-taken', owner: taken!.owner },
        { name: 'live', owner: live.owner },
      ]);
      expect(await app.locks.unlock(taken!)).toBe(true);
      expect(await app.locks.unlock(live)).toBe(true);
    });

    it(`keeps ${WORKERS} acquirers on two instances and a clean-up running back to back free of failures`, async () => {
      const live = await apps[1].locks.getLock('load-live', { expires: 60 });
      const { letGo } = await holdRow(apps[1], isolation, 'load-live');
      const failures: unknown[] = [];
      let pairs = 0;
      let deleted = 0;
      const endAt = performance.now() + LOAD_MS;
      try {
        const acquirers = Array.from({ length: WORKERS }, async (_, worker) => {
          const { locks } = apps[worker % apps.length];
          for (let round = 0; performance.now() < endAt; round++) {
            try {
              // Every other lock is left to expire, so the clean-up always has rows to delete and
              // the acquirers keep taking over expired rows it may be deleting.
              const lock = await locks.getLock(`load-${worker}-${round % 10}`, { expires: 0.05, wait: 5 });
              if (round % 2) await locks.unlock(lock);
              pairs++;
            } catch (error) {
              failures.push(error);
            }
          }
        });
        const cleanup = (async () => {
          while (performance.now() < endAt) {
            try {
              deleted += await apps[1].locks.cleanLocks();
            } catch (error) {
              failures.push(error);
            }
          }
        })();
        await Promise.all([...acquirers, cleanup]);
      } finally {
        await letGo();
      }
      expect(failures).toEqual([]);
      expect(pairs).toBeGreaterThan(WORKERS);
      expect(deleted).toBeGreaterThan(0);
      expect((await apps[0].locks.listLocks()).find((lock) => lock.name === 'load-live')?.fencingToken).toBe(live.fencingToken);
    });
  });
}
