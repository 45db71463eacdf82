import Database from 'better-sqlite3';
import { LockDatabaseError } from '../lib';
import { runCounterProcesses, strictlyIncreasing } from './support/counter-processes';
import { createLockApp, dropLockTable, LockApp, sleep, tableRows, useLockApp } from './support/lock-app';
import { describeOnDatabase, sqliteFile, testDatabase, uniqueName } from './support/test-databases';

/** Counts the turns of a 10 ms timer: whether the event loop kept running while a lock call waited. */
function countTicks(): { count(): number; stop(): void } {
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  return { count: () => ticks, stop: () => clearInterval(timer) };
}

/** Another connection to the file, holding SQLite's write lock until `letGo` (as another process's write would). */
function holdWriteLock(isolation: string): { letGo(): void } {
  const connection = new Database(sqliteFile(isolation));
  connection.exec('BEGIN IMMEDIATE');
  return {
    letGo: () => {
      if (!connection.open) return;
      connection.exec('ROLLBACK');
      connection.close();
    },
  };
}

/** What a call came to, and how many milliseconds after `startedAt` it settled. */
async function settled(call: Promise<unknown>, startedAt: number): Promise<{ value?: unknown; error?: Error; elapsed: number }> {
  const outcome = await call.then(
    (value) => ({ value }),
    (error: Error) => ({ error }),
  );
  return { ...outcome, elapsed: performance.now() - startedAt };
}

describeOnDatabase(testDatabase('sqlite'), 'Waiting for the SQLite file lock', (database) => {
  describe('behind a transaction of the app', () => {
    const isolation = uniqueName('busy_app');
    let app: LockApp;

    useLockApp(database, isolation, async (started) => {
      app = started;
      await app.dataSource.query('CREATE TABLE orders (id integer PRIMARY KEY, item varchar(50) NOT NULL)');
    });

    it('keeps the event loop running, and takes the lock once the app commits', async () => {
      const queryRunner = app.dataSource.createQueryRunner();
      await queryRunner.startTransaction();
      const ticks = countTicks();
      try {
        // The write makes the app's transaction hold the file's write lock until it commits.
        await queryRunner.query(`INSERT INTO orders (item) VALUES ('book')`);
        let done = false;
        const locking = settled(app.locks.getLock('report', { expires: 60 }), performance.now()).finally(() => (done = true));
        await sleep(1000);
        expect(done).toBe(false);
        expect(ticks.count()).toBeGreaterThan(30);
        await queryRunner.commitTransaction();
        expect(await locking).toMatchObject({ value: { name: 'report', fencingToken: 1 } });
        expect(await app.locks.isLocked('report')).toBe(true);
        expect(await app.dataSource.query('SELECT item FROM orders')).toEqual([{ item: 'book' }]);
      } finally {
        ticks.stop();
        if (queryRunner.isTransactionActive) await queryRunner.rollbackTransaction();
        await queryRunner.release();
      }
    });
  });

  describe('at start-up', () => {
    const isolation = uniqueName('busy_start');
    afterAll(() => dropLockTable(database, isolation));

    it('waits for the file without blocking the event loop, then starts', async () => {
      const holder = holdWriteLock(isolation);
      const ticks = countTicks();
      let app: LockApp | undefined;
      try {
        let done = false;
        const starting = settled(createLockApp(database, isolation), performance.now()).finally(() => (done = true));
        await sleep(1000);
        expect(done).toBe(false);
        expect(ticks.count()).toBeGreaterThan(30);
        holder.letGo();
        const started = await starting;
        app = started.value as LockApp;
        expect(started.error).toBeUndefined();
        expect(await app.locks.getLock('report', { expires: 60 })).toMatchObject({ name: 'report', fencingToken: 1 });
      } finally {
        ticks.stop();
        holder.letGo();
        await app?.close();
      }
    });
  });

  describe('held by another connection for longer than operationTimeout', () => {
    const isolation = uniqueName('busy_timeout');
    let app: LockApp;

    useLockApp(database, isolation, (started) => (app = started), { operationTimeout: 1 });

    it('fails every write with LockDatabaseError after operationTimeout, keeping the event loop running and writing nothing', async () => {
      const held = await app.locks.getLock('held', { expires: 60 });
      const before = await tableRows(app, isolation);
      const holder = holdWriteLock(isolation);
      const ticks = countTicks();
      const startedAt = performance.now();
      const outcomes = await Promise.all(
        [
          app.locks.getLock('new', { expires: 60 }),
          app.locks.tryLock('new'),
          app.locks.unlock(held),
          app.locks.unlock('held'),
          app.locks.renewLock(held, { expires: 600 }),
          app.locks.setLock(['held', 'new']),
          app.locks.cleanLocks(),
        ].map((call) => settled(call, startedAt)),
      );
      ticks.stop();
      holder.letGo();
      for (const outcome of outcomes) {
        expect(outcome.error).toBeInstanceOf(LockDatabaseError);
        expect(outcome.error!.message).toMatch(/stayed locked .*for 1 seconds \(the operationTimeout option\)/);
        expect(outcome.elapsed).toBeGreaterThan(900);
        expect(outcome.elapsed).toBeLessThan(3000);
      }
      // A 10 ms timer over the second or more the calls waited.
      expect(ticks.count()).toBeGreaterThan(40);
      expect(await tableRows(app, isolation)).toEqual(before);
      // No fencing token was drawn either.
      expect((await app.locks.getLock('new', { expires: 60 })).fencingToken).toBe(held.fencingToken + 1);
    });
  });

  describe('contended by two connections of one process', () => {
    const isolation = uniqueName('busy_pair');
    const apps: LockApp[] = [];

    beforeAll(async () => {
      for (let i = 0; i < 2; i++) apps.push(await createLockApp(database, isolation));
    });
    afterAll(async () => {
      for (const app of apps) await app.close();
      await dropLockTable(database, isolation);
    });

    it('gives each name to exactly one of them once the file is free', async () => {
      const names = ['first', 'second', 'third'];
      const holder = holdWriteLock(isolation);
      setTimeout(() => holder.letGo(), 300);
      const taken = await Promise.all(names.flatMap((name) => apps.map((app) => app.locks.tryLock(name, { expires: 60 }))));
      const winners = names.map((name) => taken.filter((lock) => lock?.name === name).length);
      expect(winners).toEqual([1, 1, 1]);
      expect(taken.filter((lock) => lock === null)).toHaveLength(names.length);
    });
  });

  describe('contended by two processes', () => {
    const isolation = uniqueName('busy_processes');

    beforeAll(async () => {
      await (await createLockApp(database, isolation)).close();
    });
    afterAll(() => dropLockTable(database, isolation));

    it('keeps a read-modify-write counter exact while another connection takes the file now and then', async () => {
      let running = true;
      const interference = (async () => {
        while (running) {
          const holder = holdWriteLock(isolation);
          await sleep(100);
          holder.letGo();
          await sleep(50);
        }
      })();
      try {
        const outcome = await runCounterProcesses(database, isolation, { processes: 2, lockNames: ['counter'], iterations: 30 });
        for (const finished of outcome.processes) expect(finished).toMatchObject({ code: 0, stderr: '' });
        expect(outcome.totals).toEqual({ counter: 60 });
        expect(strictlyIncreasing(outcome.tokens.counter)).toBe(true);
      } finally {
        running = false;
        await interference;
      }
    });
  });
});
