import { getEventListeners } from 'node:events';
import { LockedError } from '../lib';
import { IDLE_CONNECTION_MS } from '../lib/dialects/postgres/postgres-pool';
import type { HandoffWaiterAcquired, HandoffWaiterSettings, HandoffWaiterWaiting } from './workers/handoff-waiter';
import { createLockApp, dropLockTable, LockApp, sleep } from './support/lock-app';
import { runScript } from './support/processes';
import { describeOnDatabase, testDatabase, uniqueName } from './support/test-databases';

/** Waiters here poll every 30 to 60 seconds and give up after 25: only a NOTIFY can hand them the lock. */
const SLOW_POLL = 60;
const WAIT = 25;

describeOnDatabase(testDatabase('postgres'), 'Hand-off through LISTEN/NOTIFY', (database) => {
  const isolation = uniqueName('handoff');
  let holder: LockApp;

  beforeAll(async () => {
    holder = await createLockApp(database, isolation);
  });
  afterAll(async () => {
    await holder?.close();
    await dropLockTable(database, isolation);
  });

  async function flagged(name: string): Promise<boolean> {
    const rows = await holder.dataSource.query(`SELECT waiting FROM "${isolation}" WHERE name = $1`, [name]);
    return rows[0]?.waiting === true;
  }

  async function until(condition: () => Promise<boolean>, what: string, tries = 300): Promise<void> {
    for (let tried = 0; tried < tries; tried++) {
      if (await condition()) return;
      await sleep(20);
    }
    throw new Error(`Timed out waiting until ${what}.`);
  }

  function listenerPids(): Promise<number[]> {
    return holder.dataSource
      .query(`SELECT pid FROM pg_stat_activity WHERE application_name = 'nestjs-lockmgr listener' AND query = $1`, [`LISTEN "${isolation}"`])
      .then((rows: { pid: number }[]) => rows.map((row) => row.pid));
  }

  it('wakes a waiter in another process on release, long before its next poll', async () => {
    const held = await holder.locks.getLock('handoff', { expires: 0 });
    const settings: HandoffWaiterSettings = {
      dataSourceOptions: database.dataSourceOptions(isolation),
      tableName: isolation,
      lockNames: ['handoff'],
      wait: WAIT,
      pollInterval: SLOW_POLL,
    };
    const waiter = runScript('workers/handoff-waiter.ts', [JSON.stringify(settings)]);
    // 1. the waiter announces itself on the row; 2. the holder releases; 3. the waiter takes the lock.
    await until(() => flagged('handoff'), 'the waiter flagged the lock');
    expect(await holder.locks.unlock(held)).toBe(true);
    const finished = await waiter;
    expect(finished).toMatchObject({ code: 0, stderr: '' });
    const [waiting, acquired] = finished.stdout.trim().split('\n').map((line) => JSON.parse(line)) as [HandoffWaiterWaiting, HandoffWaiterAcquired];
    expect(acquired.fencingToken).toBeGreaterThan(held.fencingToken);
    // Without the NOTIFY its next attempt would be its last, when the wait runs out.
    expect(acquired.at - waiting.at).toBeLessThan((WAIT * 1000) / 2);
  });

  it('keeps listening after its connection is terminated, on one connection for all waits', async () => {
    const waiterApp = await createLockApp(database, isolation, { pollInterval: SLOW_POLL });
    try {
      const names = Array.from({ length: 20 }, (_, i) => `many-${i}`);
      const held = await Promise.all(names.map((name) => holder.locks.getLock(name, { expires: 0 })));
      const waits = names.map((name) => waiterApp.locks.getLock(name, { wait: WAIT }));
      await until(async () => (await Promise.all(names.map(flagged))).every(Boolean), 'every waiter flagged its lock');
      const [first] = await listenerPids();
      expect(await listenerPids()).toHaveLength(1);

      await holder.dataSource.query('SELECT pg_terminate_backend($1)', [first]);
      await until(async () => (await listenerPids()).some((pid) => pid !== first), 'a new listener connected');
      expect(await listenerPids()).toHaveLength(1);

      const releasedAt = performance.now();
      await Promise.all(held.map((lock) => holder.locks.unlock(lock)));
      const taken = await Promise.all(waits);
      expect(performance.now() - releasedAt).toBeLessThan((WAIT * 1000) / 2);
      taken.forEach((lock, i) => expect(lock.fencingToken).toBeGreaterThan(held[i].fencingToken));
    } finally {
      await waiterApp.close();
    }
  });

  it('closes the listener once no wait has used it for a while, and listens again before the next wait sleeps', async () => {
    const waiterApp = await createLockApp(database, isolation, { pollInterval: SLOW_POLL });
    try {
      const first = await holder.locks.getLock('idle-first', { expires: 0 });
      const firstWait = waiterApp.locks.getLock('idle-first', { wait: WAIT });
      await until(() => flagged('idle-first'), 'the first waiter flagged its lock');
      expect(await listenerPids()).toHaveLength(1);
      await holder.locks.unlock(first);
      await waiterApp.locks.unlock(await firstWait);
      await until(async () => (await listenerPids()).length === 0, 'the unused listener closed', (IDLE_CONNECTION_MS + 5000) / 20);

      // The next wait opens it again: only its NOTIFY can hand this waiter the lock before its wait runs out.
      const second = await holder.locks.getLock('idle-second', { expires: 0 });
      const secondWait = waiterApp.locks.getLock('idle-second', { wait: WAIT });
      await until(() => flagged('idle-second'), 'the second waiter flagged its lock');
      expect(await listenerPids()).toHaveLength(1);
      const releasedAt = performance.now();
      await holder.locks.unlock(second);
      const taken = await secondWait;
      expect(performance.now() - releasedAt).toBeLessThan((WAIT * 1000) / 2);
      expect(taken.fencingToken).toBeGreaterThan(second.fencingToken);
    } finally {
      await waiterApp.close();
    }
  });

  it('stops a wait when its signal aborts, rejecting with the reason and leaving no listener on the signal', async () => {
    const waiterApp = await createLockApp(database, isolation, { pollInterval: SLOW_POLL });
    try {
      await holder.locks.getLock('cancelled', { expires: 0 });
      const shutdown = new AbortController();
      for (let i = 0; i < 10; i++) {
        const attempt = new AbortController();
        const signal = AbortSignal.any([shutdown.signal, attempt.signal]);
        const wait = waiterApp.locks.getLock('cancelled', { wait: WAIT, signal });
        setTimeout(() => attempt.abort(new Error(`attempt ${i} cancelled`)), 50);
        await expect(wait).rejects.toThrow(`attempt ${i} cancelled`);
        expect(getEventListeners(signal, 'abort')).toHaveLength(0);
      }
      // A long-lived signal shared by many waits that end normally keeps no listeners either.
      await expect(waiterApp.locks.getLock('cancelled', { wait: 0.2, signal: shutdown.signal })).rejects.toBeInstanceOf(LockedError);
      const free = await waiterApp.locks.getLock('free-now', { wait: 5, signal: shutdown.signal });
      expect(free).toBeDefined();
      expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0);
    } finally {
      await waiterApp.close();
    }
  });
});
