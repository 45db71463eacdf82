import type { QueryRunner } from 'typeorm';
import { LockDatabaseError } from '../../lib';
import { LockApp, sleep, tableRows, until, useLockApp } from '../support/lock-app';
import { describeEachDatabase, describeOnDatabase, testDatabase, TestDatabase, uniqueName, withDataSourceOptions } from '../support/test-databases';

const OPERATION_TIMEOUT = 1;
/** How long the clean-up of an abandoned acquisition may take to be sure: the operation timeout and a margin. */
const SETTLE_MS = OPERATION_TIMEOUT * 1000 + 1500;

/** An answer lost on its way back: the database did the work, and the caller hears that the call failed. */
function loseAnswer(app: LockApp, method: 'acquire' | 'setLocks', times = 1): jest.SpyInstance {
  const original = (app.dialect[method] as (...args: unknown[]) => Promise<unknown>).bind(app.dialect);
  const spy = jest.spyOn(app.dialect, method);
  for (let i = 0; i < times; i++) {
    spy.mockImplementationOnce(async (...args: unknown[]) => {
      await original(...args);
      throw new Error('Connection terminated unexpectedly');
    });
  }
  return spy;
}

async function liveNames(app: LockApp): Promise<string[]> {
  return (await app.locks.listLocks()).map((lock) => lock.name);
}

describeEachDatabase('An acquisition its caller was told failed', (database) => {
  const isolation = uniqueName('abandoned');
  let app: LockApp;

  useLockApp(database, isolation, (started) => (app = started), { operationTimeout: OPERATION_TIMEOUT });

  it('leaves no lock behind when a release fails before it reaches the database', async () => {
    const lock = await app.locks.getLock('failed-release', { expires: 60 });
    const spy = jest.spyOn(app.dialect, 'release').mockRejectedValueOnce(new Error('Connection terminated unexpectedly'));
    try {
      await expect(app.locks.unlock(lock)).rejects.toBeInstanceOf(LockDatabaseError);
    } finally {
      spy.mockRestore();
    }
    // Released by its owner token at once, not when its 60 s lease ends.
    await until(async () => !(await app.locks.isLocked('failed-release')), 1000);
  });

  it('leaves no lock behind when its answer is lost after the database took the lock', async () => {
    const spy = loseAnswer(app, 'acquire');
    try {
      await expect(app.locks.getLock('lost-answer', { expires: 0 })).rejects.toBeInstanceOf(LockDatabaseError);
    } finally {
      spy.mockRestore();
    }
    await until(async () => !(await app.locks.isLocked('lost-answer')), SETTLE_MS);
    expect(await app.locks.tryLock('lost-answer')).not.toBeNull();
  });

  it('keeps the lock a later attempt of the same wait took, while it cleans up the attempt that failed', async () => {
    // The holder's lease runs out: a release would hand the lock over to the wait on PostgreSQL, with no attempt.
    await app.locks.getLock('retaken', { expires: 0.3 });
    // The first attempt finds the lock held; the next one takes it, but its answer is lost.
    const acquire = app.dialect.acquire.bind(app.dialect);
    let lost: number | undefined;
    const spy = jest.spyOn(app.dialect, 'acquire').mockImplementation(async (request) => {
      const result = await acquire(request);
      if (result.acquired && lost === undefined) {
        lost = result.lock.fencingToken;
        throw new Error('Connection terminated unexpectedly');
      }
      return result;
    });
    let lock;
    try {
      lock = await app.locks.getLock('retaken', { wait: 10, expires: 60 });
    } finally {
      spy.mockRestore();
    }
    // Taken again once the lost attempt's lock was cleaned up: by an attempt, or handed over (PostgreSQL).
    expect(lock.fencingToken).toBeGreaterThan(lost!);
    await sleep(SETTLE_MS);
    expect((await app.locks.listLocks()).find((live) => live.name === 'retaken')?.fencingToken).toBe(lock.fencingToken);
    expect(await app.locks.unlock(lock)).toBe(true);
  });

  it('leaves none of the locks of a setLock whose answer is lost', async () => {
    const spy = loseAnswer(app, 'setLocks');
    try {
      await expect(app.locks.setLock(['set-a', 'set-b'], { timeout: 0 })).rejects.toBeInstanceOf(LockDatabaseError);
    } finally {
      spy.mockRestore();
    }
    await until(async () => (await liveNames(app)).every((name) => !name.startsWith('set-')), SETTLE_MS);
  });
});

/** Holds the whole lock table in another session, so that every statement on it waits. */
async function holdTable(database: TestDatabase, runner: QueryRunner, table: string): Promise<() => Promise<void>> {
  if (database.kind === 'postgres') {
    await runner.startTransaction();
    await runner.query(`LOCK TABLE "${table}" IN ACCESS EXCLUSIVE MODE`);
    return () => runner.commitTransaction();
  }
  await runner.query(`LOCK TABLES \`${table}\` WRITE`);
  return async () => void (await runner.query('UNLOCK TABLES'));
}

for (const kind of ['postgres', 'mysql'] as const) {
  describeOnDatabase(testDatabase(kind), 'An acquisition held up on the server past the operation timeout', (database) => {
    const isolation = uniqueName('held_up');
    let app: LockApp;

    useLockApp(database, isolation, (started) => (app = started), { operationTimeout: OPERATION_TIMEOUT });

    it('fails, and never commits later a lock that nobody owns', async () => {
      const runner = app.dataSource.createQueryRunner();
      await runner.connect();
      try {
        const letGo = await holdTable(database, runner, isolation);
        const startedAt = performance.now();
        await expect(app.locks.getLock('held-up', { expires: 0 })).rejects.toBeInstanceOf(LockDatabaseError);
        expect(performance.now() - startedAt).toBeLessThan(OPERATION_TIMEOUT * 1000 + 1000);
        // The table stays locked a while longer, then frees the statement if the server still runs it.
        await sleep(1000);
        await letGo();
      } finally {
        await runner.release();
      }
      await sleep(SETTLE_MS);
      expect(await tableRows(app, isolation)).toEqual([]);
    });
  });
}

describeOnDatabase(testDatabase('mysql'), 'An acquisition held up on the server, on a data source that resets connections given back to the pool', (mariadb) => {
  const isolation = uniqueName('held_up_reset');
  let app: LockApp;

  // resetOnRelease would clear the session's statement limits; one connection, so that the claim runs on one given back.
  useLockApp(withDataSourceOptions(mariadb, { extra: { resetOnRelease: true } }), isolation, (started) => (app = started), {
    operationTimeout: OPERATION_TIMEOUT,
    poolSize: 1,
  });

  it('fails, and never commits later a lock that nobody owns', async () => {
    await app.locks.unlock(await app.locks.getLock('warm-up'));
    // Another session, at the server's default REPEATABLE READ, looks the free name up FOR UPDATE: it
    // locks the gap the name would go in. The claim waits for that gap, while the releases of its
    // abandoned owner token, under READ COMMITTED, find no row and wait for nothing.
    const runner = app.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ');
      await runner.startTransaction();
      await runner.query(`SELECT name FROM \`${isolation}\` WHERE name = 'held-up' FOR UPDATE`);
      await expect(app.locks.tryLock('held-up')).rejects.toBeInstanceOf(LockDatabaseError);
      // Past the last release of the abandoned owner token.
      await sleep(SETTLE_MS + 1000);
      await runner.commitTransaction();
    } finally {
      await runner.release();
    }
    await sleep(500);
    expect(await app.locks.isLocked('held-up')).toBe(false);
  });
});
