import { randomInt } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { DjangoService } from './support/django-lockmgr';
import { installEarlierDrawFunction } from './support/earlier-version';
import { createLockApp, dropLockTable, LockApp, sleep, until } from './support/lock-app';
import { describeOnDatabase, POSTGRES_URL, testDatabase, uniqueName } from './support/test-databases';

describeOnDatabase(testDatabase('postgres'), 'Fencing tokens across a table shared with django-lockmgr', (database) => {
  const isolation = uniqueName('django_order');
  const pause = `zz_${isolation}_pause`;
  /** The advisory lock a paused Django insert waits for, held by the test. */
  const pauseKey = [randomInt(1, 2 ** 31), randomInt(1, 2 ** 31)];
  let app: LockApp;
  let django: DjangoService;
  let scheduler: Client;

  beforeAll(async () => {
    app = await createLockApp(database, isolation);
    django = await DjangoService.connect(database, isolation, isolation);
    scheduler = new Client({ connectionString: POSTGRES_URL });
    await scheduler.connect();
    // Stands for the scheduler descheduling Django's backend in the middle of its INSERT: after the row's
    // values and the table's own triggers (BEFORE triggers run in name order), before the uniqueness check.
    await scheduler.query(`CREATE FUNCTION "${pause}"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.locked_by = 'django-paused' THEN PERFORM pg_advisory_xact_lock(${pauseKey[0]}, ${pauseKey[1]}); END IF;
        RETURN NEW;
      END $$`);
    await scheduler.query(`CREATE TRIGGER "${pause}" BEFORE INSERT ON "${isolation}" FOR EACH ROW EXECUTE FUNCTION "${pause}"()`);
  });
  afterAll(async () => {
    await app?.close();
    await django?.stop();
    await scheduler?.query(`DROP TABLE IF EXISTS "${isolation}"`);
    await scheduler?.query(`DROP FUNCTION IF EXISTS "${pause}"()`);
    await scheduler?.end();
    await dropLockTable(database, isolation);
  });

  it('gives a Django insert a token greater than every Nest grant committed while it was in flight', async () => {
    await scheduler.query('SELECT pg_advisory_lock($1, $2)', pauseKey);
    const grants: { by: 'nest' | 'django'; token?: number }[] = [];
    const djangoInsert = django.insertLock('job', { expires: 60, lockedBy: 'django-paused' }).then(() => grants.push({ by: 'django' }));
    await until(async () => {
      const { rows } = await scheduler.query(`SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = $1`, [pauseKey[1]]);
      return rows.length > 0;
    });
    // A Nest grant of the name, and its release, while the Django insert is in flight.
    const nest = (async () => {
      const lock = await app.locks.tryLock('job', { expires: 60 });
      if (lock) {
        grants.push({ by: 'nest', token: lock.fencingToken });
        await app.locks.unlock(lock);
      }
      return lock;
    })();
    await Promise.race([nest, sleep(1_000)]);
    await scheduler.query('SELECT pg_advisory_unlock($1, $2)', pauseKey);
    await djangoInsert;
    await nest;

    const djangoToken = Number((await django.rows()).find((row) => row.name === 'job')!.fencing_token);
    const nestBefore = grants.slice(0, grants.findIndex((grant) => grant.by === 'django'));
    for (const grant of nestBefore) expect(djangoToken).toBeGreaterThan(grant.token!);
    // The Django lock is held: Nest gets the name only once it is released, with a greater token.
    expect(await app.locks.isLocked('job')).toBe(true);
    await app.locks.unlock('job');
    expect((await app.locks.getLock('job', { expires: 60 })).fencingToken).toBeGreaterThan(djangoToken);
  });

  it('still draws no token in the trigger for rows that carry one, and one for each Django insert', async () => {
    const before = await app.locks.getLock('nest-own', { expires: 60 });
    await django.insertLock('django-own', { expires: 60 });
    const after = await app.locks.getLock('nest-after', { expires: 60 });
    const djangoToken = Number((await django.rows()).find((row) => row.name === 'django-own')!.fencing_token);
    expect(djangoToken).toBeGreaterThan(before.fencingToken);
    expect(after.fencingToken).toBe(djangoToken + 1);
  });

  it('retries a Nest acquisition that deadlocks with a Django get_lock deleting and inserting the same name', async () => {
    const expired = await app.locks.getLock('recycled', { expires: 0.1 });
    await sleep(200);
    // django-lockmgr's get_lock in one transaction: delete the expired rows, then insert the name.
    await scheduler.query('BEGIN');
    await scheduler.query(`DELETE FROM "${isolation}" WHERE name = 'recycled' AND locked_until < clock_timestamp()`);
    const nest = app.locks.tryLock('recycled', { expires: 60 }).then(
      (lock) => ({ lock }),
      (error: unknown) => ({ error }),
    );
    // The acquisition holds the name's advisory lock and waits for the row Django deleted.
    await until(async () => {
      const { rows } = await scheduler.query(
        `SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO "${isolation}"%'`,
      );
      return rows.length > 0;
    });
    const djangoInsert = scheduler
      .query(
        `INSERT INTO "${isolation}" (name, locked_by, lock_process, locked_until, created_at, updated_at)
          VALUES ('recycled', 'django-host', 4321, clock_timestamp() + interval '60 seconds', clock_timestamp(), clock_timestamp())`,
      )
      .then(() => scheduler.query('COMMIT'))
      .then(
        () => true,
        async () => (await scheduler.query('ROLLBACK'), false),
      );
    const [outcome, djangoGotIt] = await Promise.all([nest, djangoInsert]);
    // One of the two got the name; the deadlock never reaches the Nest caller as a database error.
    expect('error' in outcome ? outcome.error : undefined).toBeUndefined();
    const lock = 'lock' in outcome ? outcome.lock : null;
    expect(lock === null).toBe(djangoGotIt);
    if (lock) expect(lock.fencingToken).toBeGreaterThan(expired.fencingToken);
  });
});

describeOnDatabase(testDatabase('postgres'), 'Fencing tokens in a table an earlier version made', (database) => {
  const isolation = uniqueName('earlier_tokens');
  /** Tokens the earlier version handed out. */
  const DRAWN = 5000;
  let admin: DataSource;
  let django: DjangoService;

  beforeAll(async () => {
    await (await createLockApp(database, isolation)).close();
    admin = await new DataSource(database.dataSourceOptions(isolation)).initialize();
    await installEarlierDrawFunction(admin, isolation, DRAWN);
    django = await DjangoService.connect(database, isolation, isolation);
  });
  afterAll(async () => {
    await django?.stop();
    await admin?.destroy();
    await dropLockTable(database, isolation);
  });

  it("has its trigger upgraded by the owner's start-up: every token after it, Nest's and Django's, carries the timeline and exceeds the earlier ones", async () => {
    await django.insertLock('before-upgrade', { expires: 60 });
    const app = await createLockApp(database, isolation);
    try {
      const nest = await app.locks.getLock('nest', { expires: 60 });
      await django.insertLock('django', { expires: 60 });
      const tokens = Object.fromEntries((await django.rows()).map((row) => [row.name, Number(row.fencing_token)]));
      expect(tokens['before-upgrade']).toBe(DRAWN + 1);
      // The timeline (1 at least) times 2^40, plus the sequence.
      expect(nest.fencingToken).toBeGreaterThan(2 ** 40);
      expect(tokens.django).toBeGreaterThan(nest.fencingToken);
    } finally {
      await app.close();
    }
  });
});
