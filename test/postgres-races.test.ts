import type { LockService } from '../lib';
import { createLockApp, dropLockTable, LockApp, sleep, until } from './support/lock-app';
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

  it('hands the lock to a waiter that flagged it while its release was in flight, whether its first attempt took its place or a statement after it', async () => {
    // The first wait opens the listener, so its place is taken after the attempt; the second finds it
    // open, and its failed attempt takes the place in the same statement.
    for (const takenBy of ['SELECT held, seconds_left', 'WITH acquired AS']) {
      await holder.locks.getLock('x', { expires: 60 });
      // A release in flight: its DELETE holds the row lock, read no waiter's flag, and will notify nobody.
      const release = holder.dataSource.createQueryRunner();
      await release.startTransaction();
      try {
        await release.query(`DELETE FROM "${isolation}" WHERE name = 'x'`);
        const waiting = other.locks.getLock('x', { wait: 20 });
        // The waiter's first attempt failed; its flag, set as it takes its place, now waits for the release's
        // row lock (in the statement that took the place: the acquisition's text is longer than the server shows).
        await until(async () => {
          const [{ blocked }] = await holder.dataSource.query(
            `SELECT count(*)::int AS blocked FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1 AND query LIKE $2`,
            [`${takenBy}%`, `%"${isolation}%`],
          );
          return blocked === 1;
        });
        await release.commitTransaction();
        const releasedAt = performance.now();
        const lock = await waiting;
        expect(lock.name).toBe('x');
        // Without the hand-off, the waiter sleeps until its next poll, 5 seconds or more away.
        expect(performance.now() - releasedAt).toBeLessThan(2000);
        await other.locks.unlock(lock);
      } finally {
        await release.release();
      }
    }
  });

  it('leaves no place in the queue behind waiters aborted at any moment, even while they take their place', async () => {
    const held = await holder.locks.getLock('aborted', { expires: 60 });
    const places = async () => {
      const [{ count }] = await holder.dataSource.query(`SELECT count(*)::int AS count FROM "${isolation}_queue" WHERE name = 'aborted'`);
      return count as number;
    };
    // Aborts spread over the first attempts, the taking of places and the sleeps after it, in three rounds.
    for (let round = 0; round < 3; round++) {
      const waits = Array.from({ length: 40 }, (_, index) =>
        other.locks.getLock('aborted', { wait: 20, signal: AbortSignal.timeout(1 + index * 3 + round) }).then(
          () => 'acquired',
          (error: Error) => error.name,
        ),
      );
      expect(new Set(await Promise.all(waits))).toEqual(new Set(['TimeoutError']));
    }
    // A place left behind would be renewed by its process for as long as it runs, and hold up every waiter.
    await sleep(1000);
    expect(await places()).toBe(0);
    await holder.locks.unlock(held);
    const startedAt = performance.now();
    await other.locks.unlock(await other.locks.getLock('aborted', { wait: 20 }));
    expect(performance.now() - startedAt).toBeLessThan(1000);
  });

  it('releases a lock handed over to a waiter that gave up in the same moment, so that it is left to nobody', async () => {
    const held = await holder.locks.getLock('handed', { expires: 60 });
    const giveUp = new AbortController();
    const waiting = other.locks.getLock('handed', { wait: 20, signal: giveUp.signal });
    const blocked = async (statement: string) => {
      const [{ count }] = await holder.dataSource.query(
        `SELECT count(*)::int AS count FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1`,
        [`%${statement}%`],
      );
      return count as number;
    };
    await until(async () => (await holder.dataSource.query(`SELECT FROM "${isolation}_queue" WHERE name = 'handed'`)).length === 1);
    // The place's row lock, held here, stops the release's hand-over, then the waiter's departure behind it.
    const blocker = holder.dataSource.createQueryRunner();
    await blocker.startTransaction();
    try {
      await blocker.query(`SELECT FROM "${isolation}_queue" WHERE name = 'handed' FOR UPDATE`);
      const releasing = holder.locks.unlock(held);
      await until(async () => (await blocked(`DELETE FROM "${isolation}" WHERE name`)) === 1);
      giveUp.abort(new Error('gave up'));
      await expect(waiting).rejects.toThrow('gave up');
      await until(async () => (await blocked(`DELETE FROM "${isolation}_queue" WHERE waiter`)) === 1);
      await blocker.commitTransaction();
      expect(await releasing).toBe(true);
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
    }
    // The hand-over came first: the departure found its place granted, and released the lock.
    let free: Awaited<ReturnType<LockService['tryLock']>> = null;
    await until(async () => (free = await holder.locks.tryLock('handed', { expires: 60 })) !== null, 2000);
    expect(await holder.locks.unlock(free!)).toBe(true);
  });

  it('sets locks whose advisory keys collide, concurrently, without deadlocking', async () => {
    // Two names with the same hashtext (the 32-bit key of their advisory locks), found among many candidates.
    const [{ names }] = await holder.dataSource.query(
      `SELECT array_agg(name ORDER BY name) AS names
        FROM (SELECT 'key-' || lpad(i::text, 7, '0') AS name FROM generate_series(1, 300000) AS i) AS candidates
        GROUP BY hashtext(name) HAVING count(*) > 1 LIMIT 1`,
    );
    const [low, high]: string[] = names;
    const middle = `${low}-between`;
    expect(low < middle && middle < high).toBe(true);
    // By name, [low, middle] locks the shared key first and [middle, high] last: opposite orders.
    for (let round = 0; round < 20; round++) {
      const [first, second] = await Promise.all([
        holder.locks.setLock([low, middle], { timeout: 60 }),
        other.locks.setLock([middle, high], { timeout: 60 }),
      ]);
      expect(first.locks.map((lock) => lock.name)).toEqual([low, middle]);
      expect(second.locks.map((lock) => lock.name)).toEqual([middle, high]);
      // One of them created the name they share, and the other renewed it.
      const statuses = [first.statuses[1][1].status, second.statuses[0][1].status].sort();
      expect(statuses).toEqual(['create', 'extend']);
      expect(first.statuses[0][1].status).toBe('create');
      expect(second.statuses[1][1].status).toBe('create');
      for (const name of [low, middle, high]) expect(await holder.locks.unlock(name)).toBe(true);
    }
  });
});
