import { LockLostError, LockManager } from '../../lib';
import { LockApp, sleep, until, useLockApp } from '../support/lock-app';
import { describeEachDatabase, describeOnDatabase, testDatabase, uniqueName } from '../support/test-databases';

const LEASE = 2;
/** What the holder is promised when renewals fail: told at least this long before its lease ends (a fifth of a short lease). */
const MARGIN = LEASE / 5;

/** When the manager's signal aborted, in `performance.now()` time. */
function lossTime(manager: LockManager): Promise<number> {
  return new Promise((resolve) => manager.signal.addEventListener('abort', () => resolve(performance.now()), { once: true }));
}

describeEachDatabase('A holder whose renewals fail', (database) => {
  const isolation = uniqueName('lease_loss');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started));

  it('is told before its lease ends, by the documented margin, and the lock is let go', async () => {
    const askedAt = performance.now();
    const manager = await app.locks.manager('failing-renewals', { expires: LEASE });
    const renewals = jest.spyOn(app.dialect, 'renew').mockRejectedValue(new Error('Connection terminated unexpectedly'));
    try {
      const lostAt = await lossTime(manager);
      expect(manager.signal.reason).toBeInstanceOf(LockLostError);
      // The lease ends no sooner than LEASE seconds after the lock was asked for.
      const leaseEndsAt = askedAt + LEASE * 1000;
      expect(leaseEndsAt - lostAt).toBeGreaterThanOrEqual(MARGIN * 1000 - 50);
      expect(leaseEndsAt - lostAt).toBeLessThan(MARGIN * 1000 + 500);
      expect(renewals.mock.calls.length).toBeGreaterThanOrEqual(2);
    } finally {
      renewals.mockRestore();
    }
    // The lock is released by its owner token, not left until its lease ends.
    await until(async () => !(await app.locks.isLocked('failing-renewals')), (LEASE - MARGIN) * 1000);
    await manager.release();
  });
});

for (const kind of ['postgres', 'mysql'] as const) {
  describeOnDatabase(testDatabase(kind), 'A renewal still on its way when its lock is declared lost', (database) => {
    const isolation = uniqueName('late_renewal');
    let app: LockApp;

    useLockApp(database, isolation, (started) => (app = started));

    it('leaves no orphan row when it lands', async () => {
      const manager = await app.locks.manager('late-renewal', { expires: LEASE });
      const lost = lossTime(manager);
      // Another session holds the lock's row, so the first automatic renewal (after a third of the lease) waits on the server.
      const runner = app.dataSource.createQueryRunner();
      await runner.connect();
      try {
        await runner.startTransaction();
        await runner.query(`SELECT name FROM ${app.dataSource.driver.escape(isolation)} WHERE name = 'late-renewal' FOR UPDATE`);
        await lost;
        // Let the renewal through while the lease still has time left: it renews the row the manager gave up.
        await runner.commitTransaction();
      } finally {
        await runner.release();
      }
      await sleep(500);
      expect(await app.locks.isLocked('late-renewal')).toBe(false);
      await manager.release();
    });
  });
}
