import { createLockApp, dropLockTable, LockApp, until } from './support/lock-app';
import { describeOnDatabase, testDatabase, uniqueName } from './support/test-databases';

/** Waiters here poll every 5 to 10 seconds: a wake-up that comes sooner is a hand-off, not a poll. */
const SLOW_POLL = 10;

describeOnDatabase(testDatabase('postgres'), 'Races of PostgreSQL lock operations', (database) => {
  const isolation = uniqueName('pgraces');
  let holder: LockApp;
  let other: LockApp;

  beforeAll(async () => {
    holder = await createLockApp(database, isolation);
    other = await createLockApp(database, isolation, { pollInterval: SLOW_POLL });
  });
  afterAll(async () => {
    await holder?.close();
    await other?.close();
    await dropLockTable(database, isolation);
  });

  it('hands the lock to a waiter that flagged it while its release was in flight', async () => {
    await holder.locks.getLock('x', { expires: 60 });
    // A release in flight: its DELETE holds the row lock, read no waiter's flag, and will notify nobody.
    const release = holder.dataSource.createQueryRunner();
    await release.startTransaction();
    try {
      await release.query(`DELETE FROM "${isolation}" WHERE name = 'x'`);
      const waiting = other.locks.getLock('x', { wait: 20 });
      // The waiter's first attempt failed; its flag now waits for the release's row lock.
      await until(async () => {
        const [{ blocked }] = await holder.dataSource.query(
          `SELECT count(*)::int AS blocked FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND query LIKE '%SET waiting = true%' AND query LIKE $1`,
          [`%"${isolation}"%`],
        );
        return blocked === 1;
      });
      await release.commitTransaction();
      const releasedAt = performance.now();
      const lock = await waiting;
      expect(lock.name).toBe('x');
      // Without the hand-off, the waiter sleeps until its next poll, 5 seconds or more away.
      expect(performance.now() - releasedAt).toBeLessThan(2000);
    } finally {
      await release.release();
    }
  });
});
