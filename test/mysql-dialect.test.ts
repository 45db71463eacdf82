import type { DataSourceOptions } from 'typeorm';
import { createLockApp, dropLockTable } from './support/lock-app';
import { describeOnDatabase, MYSQL_URL, TestDatabase, testDatabase, uniqueName } from './support/test-databases';

describeOnDatabase(testDatabase('mysql'), 'MySQL dialect', (mariadb) => {
  /** The MariaDB data source configured as apps do, with options the lock operations must not inherit. */
  const withDataSourceOptions = (options: Partial<DataSourceOptions>): TestDatabase => ({
    ...mariadb,
    dataSourceOptions: () => ({ type: 'mariadb', url: MYSQL_URL, ...options }) as DataSourceOptions,
  });

  it('serves data sources of TypeORM type "mysql" too, as apps on MariaDB often declare them', async () => {
    const isolation = uniqueName('type_mysql');
    const database = withDataSourceOptions({ type: 'mysql' });
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
    const database = withDataSourceOptions({ timezone: '+05:00', dateStrings: true, charset: 'utf8_general_ci' });
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
});
