import { createLockTableMigration, LockDatabaseError } from '../lib';
import { LockApp, useLockApp } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

describeEachDatabase('Database failures', (database) => {
  const isolation = uniqueName('failures');
  let app: LockApp;

  useLockApp(database, isolation, async (started) => {
    app = started;
    await app.locks.getLock('held', { expires: 60 });
    // The table disappears under the running app, as when someone drops it by hand.
    const queryRunner = app.dataSource.createQueryRunner();
    try {
      await new (createLockTableMigration({ tableName: isolation }))().down(queryRunner);
    } finally {
      await queryRunner.release();
    }
  });

  it('surface as errors from every operation, never as a held or a free lock', async () => {
    const calls: [string, () => Promise<unknown>][] = [
      ['getLock', () => app.locks.getLock('held')],
      ['tryLock', () => app.locks.tryLock('free')],
      ['isLocked', () => app.locks.isLocked('held')],
      ['unlock', () => app.locks.unlock('held')],
      ['renewLock', () => app.locks.renewLock('held')],
      ['setLock', () => app.locks.setLock(['held', 'free'])],
      ['listLocks', () => app.locks.listLocks()],
      ['cleanLocks', () => app.locks.cleanLocks()],
    ];
    for (const [operation, call] of calls) {
      const outcome = await call().then(
        (value) => ({ operation, resolved: value }),
        (error: Error) => ({ operation, error, message: error.message }),
      );
      expect(outcome).toEqual({
        operation,
        error: expect.any(LockDatabaseError),
        message: expect.stringMatching(new RegExp(`^Could not .*: .*(${isolation}|no such table)`)),
      });
    }
  });
});
