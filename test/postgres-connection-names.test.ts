import { createLockApp, dropLockTable, LockApp, until } from './support/lock-app';
import { describeOnDatabase, POSTGRES_URL, testDatabase, TestDatabase, uniqueName } from './support/test-databases';

const postgres = testDatabase('postgres');

/** The test database, as an app that names its connections in one way or another. */
function namedApp(label: string, extra: { url?: string; applicationName?: string }): TestDatabase {
  return { ...postgres, label, dataSourceOptions: () => ({ type: 'postgres', url: extra.url ?? POSTGRES_URL, applicationName: extra.applicationName }) };
}

describeOnDatabase(postgres, 'The names of the lock module’s connections in pg_stat_activity', () => {
  const isolation = uniqueName('connection_names');

  afterAll(() => dropLockTable(postgres, isolation));

  /** The application_name of each connection whose latest statement was on this file's table, by what that statement was. */
  async function namesAfterAWait(app: LockApp): Promise<{ pool: string[]; listener: string[]; app: string[] }> {
    const held = await app.locks.getLock('named', { expires: 0 });
    const wait = app.locks.getLock('named', { wait: 30 });
    const connections = () =>
      app.dataSource.query(
        `SELECT application_name AS name, query LIKE 'LISTEN %' AS listening FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE $1`,
        [`%${isolation}%`],
      ) as Promise<{ name: string; listening: boolean }[]>;
    // Flagged once the listener listens; the flag is the pool's latest statement then.
    await until(async () => (await app.dataSource.query(`SELECT waiting FROM "${isolation}" WHERE name = 'named'`))[0]?.waiting === true);
    const found = await connections();
    const [own] = await app.dataSource.query(`SELECT application_name AS name FROM pg_stat_activity WHERE pid = pg_backend_pid()`);
    await app.locks.unlock(held);
    await app.locks.unlock(await wait);
    return {
      pool: [...new Set(found.filter((connection) => !connection.listening).map((connection) => connection.name))],
      listener: found.filter((connection) => connection.listening).map((connection) => connection.name),
      app: [own.name],
    };
  }

  it.each([
    ['an app that names none', {}, { app: [''], pool: ['nestjs-lockmgr'], listener: ['nestjs-lockmgr listener'] }],
    ['TypeORM’s applicationName', { applicationName: 'billing' }, { app: ['billing'], pool: ['billing (nestjs-lockmgr)'], listener: ['billing (nestjs-lockmgr listener)'] }],
    [
      'application_name in the URL, which pg prefers to the setting',
      { url: `${POSTGRES_URL}?application_name=billing%20eu`, applicationName: 'ignored' },
      { app: ['billing eu'], pool: ['billing eu (nestjs-lockmgr)'], listener: ['billing eu (nestjs-lockmgr listener)'] },
    ],
    [
      'a name too long for PostgreSQL’s 63 characters, cut so that the module’s part stays whole',
      { applicationName: 'x'.repeat(70) },
      { app: ['x'.repeat(63)], pool: [`${'x'.repeat(46)} (nestjs-lockmgr)`], listener: [`${'x'.repeat(37)} (nestjs-lockmgr listener)`] },
    ],
  ])('tells them apart from the app’s: %s', async (label, extra, expected) => {
    const app = await createLockApp(namedApp(label, extra), isolation);
    try {
      expect(await namesAfterAWait(app)).toEqual(expected);
    } finally {
      await app.close();
    }
  });
});
