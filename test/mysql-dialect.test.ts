import type { QueryRunner } from 'typeorm';
import { createLockApp, dropLockTable, holdRow, sleep } from './support/lock-app';
import { describeOnDatabase, testDatabase, uniqueName, withDataSourceOptions } from './support/test-databases';

/**
 * The isolation levels of the transactions waiting for a row lock, other than `blocker`'s. InnoDB
 * refreshes this table only when it was not read for 0.1 s, hence the slow polling.
 */
async function waitingTransactionLevels(runner: QueryRunner, blocker: string): Promise<string[]> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await sleep(200);
    const waiting: { level: string }[] = await runner.query(
      `SELECT trx_isolation_level AS level FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> ? AND trx_state = 'LOCK WAIT'`,
      [blocker],
    );
    if (waiting.length > 0) return waiting.map(({ level }) => level);
  }
  throw new Error('No transaction waited for the row.');
}

describeOnDatabase(testDatabase('mysql'), 'MySQL dialect', (mariadb) => {
  it('serves data sources of TypeORM type "mysql" too, as apps on MariaDB often declare them', async () => {
    const isolation = uniqueName('type_mysql');
    const database = withDataSourceOptions(mariadb, { type: 'mysql' });
    const app = await createLockApp(database, isolation);
    try {
      const lock = await app.locks.getLock('job', { expires: 60 });
      expect(await app.locks.tryLock('job')).toBeNull();
      expect(await app.locks.unlock(lock)).toBe(true);
    } finally {
      await app.close();
      await dropLockTable(database, isolation);
    }
  });

  it('reads UTC times and four-byte names whatever time zone, date and charset options the data source has', async () => {
    const isolation = uniqueName('options');
    const database = withDataSourceOptions(mariadb, { timezone: '+05:00', dateStrings: true, charset: 'utf8_general_ci' });
    const app = await createLockApp(database, isolation);
    try {
      const lock = await app.locks.getLock('emoji 😀 lock', { expires: 60 });
      expect(lock.name).toBe('emoji 😀 lock');
      expect(lock.createdAt).toBeInstanceOf(Date);
      // The server runs on this host: its clock and ours agree to well within five hours.
      expect(Math.abs(lock.createdAt.getTime() - Date.now())).toBeLessThan(10_000);
      expect(lock.lockedUntil!.getTime() - lock.createdAt.getTime()).toBe(60_000);
      expect((await app.locks.listLocks()).map((listed) => listed.name)).toEqual(['emoji 😀 lock']);
    } finally {
      await app.close();
      await dropLockTable(database, isolation);
    }
  });

  it('runs the lock operations under READ COMMITTED even when the data source resets connections given back to the pool', async () => {
    const isolation = uniqueName('reset_on_release');
    const database = withDataSourceOptions(mariadb, { extra: { resetOnRelease: true } });
    // One connection, so that the operation observed runs on a connection an earlier one gave back.
    const app = await createLockApp(database, isolation, { poolSize: 1 });
    try {
      const held = await app.locks.getLock('isolation', { expires: 60 });
      const { runner, letGo } = await holdRow(app, isolation, 'isolation');
      let attempt: Promise<unknown>;
      try {
        attempt = app.locks.tryLock('isolation');
        // The claim waits for the row, so the server lists its transaction, with its isolation level.
        const [{ id }] = await runner.query('SELECT CONNECTION_ID() AS id');
        expect(await waitingTransactionLevels(runner, id)).toEqual(['READ COMMITTED']);
      } finally {
        await letGo();
      }
      expect(await attempt).toBeNull();
      expect(await app.locks.unlock(held)).toBe(true);
    } finally {
      await app.close();
      await dropLockTable(database, isolation);
    }
  });
});
