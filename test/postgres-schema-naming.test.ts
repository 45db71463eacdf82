import { Client } from 'pg';
import { createLockApp, dropLockTable, LockApp, until } from './support/lock-app';
import { describeOnDatabase, POSTGRES_URL, testDatabase, uniqueName, withDataSourceOptions } from './support/test-databases';

/**
 * One lock table in `public`, the schema the test database's search path finds, used by instances that
 * name it (`schema: 'public'`) and by instances that do not: as two services configured apart would.
 */
describeOnDatabase(testDatabase('postgres'), 'Instances that name the schema and instances that find the lock table through the search path', (database) => {
  const isolation = uniqueName('schema_naming');
  const naming = withDataSourceOptions(database, { schema: 'public' });
  let unnamed: LockApp;
  let admin: Client;

  /** When each of the table's functions was last written: a function made again gets a new row version. */
  const functionVersions = async () =>
    (await admin.query(`SELECT proname, xmin::text AS version FROM pg_proc WHERE proname LIKE $1 ORDER BY proname`, [`${isolation}%`])).rows;

  beforeAll(async () => {
    unnamed = await createLockApp(database, isolation);
    admin = new Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await unnamed?.close();
    await admin?.end();
    await dropLockTable(database, isolation);
  });

  it('share the table the other made, without making its functions again, with ensureTable on or off', async () => {
    const before = await functionVersions();
    expect(before.length).toBeGreaterThanOrEqual(5);
    for (const ensureTable of [true, false]) {
      const named = await createLockApp(naming, isolation, { ensureTable });
      try {
        const lock = await named.locks.getLock('shared', { expires: 60 });
        expect(await unnamed.locks.isLocked('shared')).toBe(true);
        // A waiter of one is served by the release of the other.
        const waiting = unnamed.locks.getLock('shared', { expires: 60, wait: 10 });
        await until(async () => (await admin.query(`SELECT FROM "${isolation}_queue" WHERE name = 'shared'`)).rows.length > 0);
        await named.locks.unlock(lock);
        const handed = await waiting;
        expect(handed.fencingToken).toBeGreaterThan(lock.fencingToken);
        await unnamed.locks.unlock(handed);
      } finally {
        await named.close();
      }
    }
    expect(await functionVersions()).toEqual(before);
    // And the other way round: an instance that does not name the schema finds the functions as it would make them.
    const again = await createLockApp(database, isolation, { ensureTable: false });
    await again.close();
    expect(await functionVersions()).toEqual(before);
  });

  it('order the grants of a name through one advisory lock, so that their fencing tokens follow the grants', async () => {
    const named = await createLockApp(naming, isolation);
    const blocker = new Client({ connectionString: POSTGRES_URL });
    await blocker.connect();
    try {
      // An uncommitted row of the name (with a token, so that no trigger draws one): an acquisition passes
      // the check for a live holder (it cannot see the row), takes the name's advisory lock, and then waits
      // for the row's transaction.
      await blocker.query('BEGIN');
      await blocker.query(`INSERT INTO "${isolation}" (name, owner, locked_until, fencing_token) VALUES ('ordered', 'blocker', clock_timestamp() - interval '1 hour', -1)`);
      const advisoryLocks = async () =>
        (await admin.query(`SELECT granted FROM pg_locks WHERE locktype = 'advisory' AND objid = hashtext('ordered')::oid ORDER BY granted DESC`)).rows;
      const first = named.locks.tryLock('ordered', { expires: 60 });
      await until(async () => (await advisoryLocks()).length === 1);
      const second = unnamed.locks.tryLock('ordered', { expires: 60 });
      // The second waits for the advisory lock the first holds, rather than taking one of its own.
      await until(async () => (await advisoryLocks()).length === 2);
      expect(await advisoryLocks()).toEqual([{ granted: true }, { granted: false }]);
      await blocker.query('ROLLBACK');
      const [taken, refused] = await Promise.all([first, second]);
      expect(taken).not.toBeNull();
      expect(refused).toBeNull();
      await named.locks.unlock(taken!);
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      await blocker.end();
      await named.close();
    }
  });
});
