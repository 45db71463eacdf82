import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { createLockTableMigration, LockedError, LockMgrModule, LockService } from '../lib';
import { DjangoService } from './support/django-lockmgr';
import { createLockApp, dropLockTable, LockApp, tableRows } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { describeEachDatabase, describeOnDatabase, TestDatabase, testDatabase, uniqueName } from './support/test-databases';

/** Owner tokens from a cryptographic source: a version-4 UUID (PostgreSQL), or 32 hex digits of `RANDOM_BYTES(16)` (MariaDB). */
const RANDOM_OWNER = {
  postgres: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  mysql: /^[0-9a-f]{32}$/,
};

/** Starts an app on the lock table `table`, and resolves it with the warnings the module logged as it started. */
async function startLogging(database: TestDatabase, isolation: string, table = isolation): Promise<{ app: LockApp; warnings: string[] }> {
  const logger = new RecordingLogger();
  const app = await createLockApp(database, isolation, { tableName: table }, logger);
  return { app, warnings: logger.lines('warn', 'LockMgrModule') };
}

describeEachDatabase('Sharing the lock table django-lockmgr created', (database) => {
  const isolation = uniqueName('django');
  let django: DjangoService;

  beforeAll(async () => {
    django = await DjangoService.connect(database, isolation, isolation);
    await django.migrate();
  });
  afterAll(async () => {
    await dropLockTable(database, isolation);
    await django?.unmigrate();
    await django?.stop();
  });

  if (database.kind === 'sqlite') {
    it('is refused at start-up with the reason, leaving the table as Django made it', async () => {
      await django.insertLock('django-held', { expires: 60 });
      const before = await django.rows();
      await expect(createLockApp(database, isolation)).rejects.toThrow(
        /lacks the columns owner, fencing_token \(it was likely created by django-lockmgr\)\. SQLite cannot add them/,
      );
      const after = await django.rows();
      expect(after).toEqual(before);
      expect(Object.keys(after[0]).sort()).toEqual(['created_at', 'lock_process', 'locked_by', 'locked_until', 'name', 'updated_at']);
    });
    return;
  }

  let app: LockApp;
  let startWarnings: string[];
  const token = async (name: string) => Number((await django.rows()).find((row) => row.name === name)!.fencing_token);
  const randomOwner = RANDOM_OWNER[database.kind as 'postgres' | 'mysql'];

  beforeAll(async () => {
    // Locks Django holds before the Nest app ever starts.
    await django.insertLock('django-held', { expires: 60, lockedBy: 'django-host' });
    await django.insertLock('django-forever', { expires: null });
    ({ app, warnings: startWarnings } = await startLogging(database, isolation));
  });
  afterAll(async () => {
    await app?.close();
  });

  it('gains owner and fencing_token columns, filled for the rows Django already had', async () => {
    const rows = await django.rows();
    expect(rows.map((row) => row.name)).toEqual(['django-forever', 'django-held']);
    for (const row of rows) {
      expect(row.owner).toMatch(randomOwner);
      expect(Number(row.fencing_token)).toBeGreaterThan(0);
    }
    expect(rows[0].owner).not.toBe(rows[1].owner);
    expect(rows[0].fencing_token).not.toEqual(rows[1].fencing_token);
  });

  it('gives the rows Django inserts later random owner tokens, not version-1 UUIDs (made of the time and the MAC address)', async () => {
    await django.insertLock('django-owner-1', { expires: 60 });
    await django.insertLock('django-owner-2', { expires: 60 });
    const owners = (await django.rows()).filter((row) => row.name.startsWith('django-owner-')).map((row) => row.owner);
    for (const owner of owners) {
      expect(owner).toMatch(randomOwner);
      expect(owner).not.toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-1/);
    }
    expect(owners[0]).not.toBe(owners[1]);
  });

  it('warns at start-up of nothing but the collation MariaDB gave Django’s table', () => {
    if (database.kind === 'postgres') return expect(startWarnings).toEqual([]);
    expect(startWarnings).toEqual([expect.stringContaining(`The lock table "${isolation}" compares names under the collation utf8mb4_general_ci`)]);
  });

  it('keeps accepting rows Django inserts with its own columns only, drawing their tokens in line with its own', async () => {
    const before = await app.locks.getLock('nest-first', { expires: 60 });
    await django.insertLock('django-later', { expires: 60 });
    const after = await app.locks.getLock('nest-second', { expires: 60 });
    const djangoToken = await token('django-later');
    expect(djangoToken).toBeGreaterThan(before.fencingToken);
    expect(after.fencingToken).toBeGreaterThan(djangoToken);
    expect(await app.locks.isLocked('django-later')).toBe(true);
  });

  it('sees a lock Django holds as held', async () => {
    const error = await app.locks.getLock('django-held').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockedError);
    expect(error).toMatchObject({ lockName: 'django-held', lockedBy: 'django-host' });
    expect(await app.locks.tryLock('django-held')).toBeNull();
    expect(await app.locks.isLocked('django-held')).toBe(true);
    const listed = (await app.locks.listLocks()).find((lock) => lock.name === 'django-held')!;
    expect(listed).toMatchObject({ lockedBy: 'django-host', lockProcess: 4321, fencingToken: await token('django-held') });
    expect(listed.expiresSeconds).toBeGreaterThan(50);
    expect(listed.expiresSeconds).toBeLessThanOrEqual(60);
  });

  it('respects a lock Django took with no expiry', async () => {
    await expect(app.locks.getLock('django-forever')).rejects.toThrow(/held by django-host with no expiry/);
    await app.locks.cleanLocks();
    expect(await app.locks.isLocked('django-forever')).toBe(true);
    expect((await app.locks.renewLock('django-forever', { expires: 30 })).lockedUntil).toBeNull();
    expect(await app.locks.unlock('django-forever')).toBe(true);
    const taken = await app.locks.getLock('django-forever', { expires: 60 });
    expect(taken.fencingToken).toBeGreaterThan(0);
  });

  it('takes over a lock Django let expire, with a greater fencing token', async () => {
    await django.insertLock('django-expired', { expires: -1 });
    const expiredToken = await token('django-expired');
    expect(await app.locks.isLocked('django-expired')).toBe(false);
    const lock = await app.locks.getLock('django-expired', { expires: 60 });
    expect(lock.fencingToken).toBeGreaterThan(expiredToken);
  });

  it('holds its own locks against Django, until it releases them', async () => {
    const lock = await app.locks.getLock('shared-job', { expires: 60 });
    expect(await django.getLock('shared-job', 60)).toBe(false);
    expect(await app.locks.unlock(lock)).toBe(true);
    expect(await django.getLock('shared-job', 60)).toBe(true);
    await expect(app.locks.getLock('shared-job')).rejects.toMatchObject({ lockName: 'shared-job', lockedBy: 'django-host' });
  });

  it('hands an expired Nest lock over to Django', async () => {
    await app.locks.getLock('short-job', { expires: 0.2 });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(await django.getLock('short-job', 60)).toBe(true);
    expect(await app.locks.isLocked('short-job')).toBe(true);
  });

  it('limits lock names to the 100 characters of Django’s name column, before any database call', async () => {
    const before = await tableRows(app, isolation);
    await expect(app.locks.getLock('x'.repeat(101))).rejects.toThrow(/getLock name is 101 characters long; the lock table allows at most 100/);
    await expect(app.locks.setLock(['ok', 'é'.repeat(101)])).rejects.toThrow(RangeError);
    expect(await tableRows(app, isolation)).toEqual(before);
    const longest = await app.locks.getLock('é'.repeat(100), { expires: 60 });
    expect(longest.name).toBe('é'.repeat(100));
  });

  it('is completed the same way by the migration, for apps that turn ensureTable off', async () => {
    const table = uniqueName('django_migrated');
    const migratedDjango = await DjangoService.connect(database, isolation, table);
    await migratedDjango.migrate();
    const migrated = new DataSource({
      ...database.dataSourceOptions(isolation),
      migrations: [createLockTableMigration({ tableName: table })],
      migrationsTableName: `${table}_migrations`,
    });
    await migrated.initialize();
    try {
      await migratedDjango.insertLock('django-held', { expires: 60 });
      await migrated.runMigrations();
      const moduleRef = await Test.createTestingModule({
        imports: [LockMgrModule.forRootAsync({ dataSource: migrated, useFactory: () => ({ tableName: table, ensureTable: false, cleanupInterval: 0 }) })],
      }).compile();
      await moduleRef.init();
      try {
        const locks = moduleRef.get(LockService);
        await expect(locks.getLock('django-held')).rejects.toBeInstanceOf(LockedError);
        await expect(locks.getLock('y'.repeat(101))).rejects.toThrow(/at most 100/);
        expect((await locks.getLock('nest')).fencingToken).toBeGreaterThan(0);
        await migratedDjango.insertLock('django-after', { expires: 60 });
        expect(await locks.isLocked('django-after')).toBe(true);
      } finally {
        await moduleRef.close();
      }
    } finally {
      await migrated.query(`DROP TABLE IF EXISTS ${migrated.driver.escape(`${table}_migrations`)}`);
      await migrated.destroy();
      await dropLockTable(database, isolation, table);
      await migratedDjango.unmigrate();
      await migratedDjango.stop();
    }
  });
});

describeOnDatabase(testDatabase('mysql'), 'A lock table Django created with the database’s case-insensitive collation', (database) => {
  const isolation = uniqueName('django_collation');
  let django: DjangoService;

  beforeAll(async () => {
    django = await DjangoService.connect(database, isolation, isolation);
    await django.migrate();
  });
  afterAll(async () => {
    await django?.stop();
    await dropLockTable(database, isolation);
  });

  it('is named in a start-up warning with the statement that makes "k", "K", "ķ" and "k " four locks', async () => {
    const fix = `ALTER TABLE \`${isolation}\` MODIFY name varchar(100) CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL`;
    const before = await startLogging(database, isolation);
    try {
      expect(before.warnings).toEqual([
        `The lock table "${isolation}" compares names under the collation utf8mb4_general_ci, as a table Django creates does (it keeps ` +
          `the database's collation): names that differ only in case, accents or trailing spaces, such as "k", "K", "ķ" and "k ", can be ` +
          `one lock there. To make them different locks, the table's owner (an account that may alter it, such as the one Django migrates ` +
          `with) can run: ${fix}. It changes Django's own queries of the table too: a Django lock on "K" no longer finds "k".`,
      ]);
      const lock = await before.app.locks.getLock('k', { expires: 60 });
      for (const name of ['K', 'ķ', 'k ']) expect(await before.app.locks.tryLock(name)).toBeNull();
      expect(await before.app.locks.unlock(lock)).toBe(true);
    } finally {
      await before.app.close();
    }

    const admin = await new DataSource(database.dataSourceOptions(isolation)).initialize();
    await admin.query(fix).finally(() => admin.destroy());
    const after = await startLogging(database, isolation);
    try {
      expect(after.warnings).toEqual([]);
      for (const name of ['k', 'ķ', 'k ']) expect((await after.app.locks.getLock(name, { expires: 60 })).name).toBe(name);
      // Django's own lookups compare exactly too: "K" is free for it, and then held for Nest.
      expect(await django.getLock('K', 60)).toBe(true);
      expect(await after.app.locks.tryLock('K')).toBeNull();
    } finally {
      await after.app.close();
    }
  });
});

describeEachDatabase('A Django service that writes local times (USE_TZ = False)', (database) => {
  if (database.kind === 'sqlite') return;
  const isolation = uniqueName('django_local');
  const tables: string[] = [];

  /** A Django table of its own, with a Django service writing times `offsetHours` east of UTC. */
  async function djangoAt(offsetHours: number): Promise<DjangoService> {
    const table = uniqueName('django_local');
    tables.push(table);
    const django = await DjangoService.connect(database, isolation, table, offsetHours);
    await django.migrate();
    return django;
  }

  afterAll(async () => {
    for (const table of tables) await dropLockTable(database, isolation, table);
  });

  if (database.kind === 'postgres') {
    it('is seen right, without a warning: Django sets its connections to its TIME_ZONE, so the instants are right', async () => {
      const django = await djangoAt(-5);
      try {
        await django.insertLock('django-west', { expires: 60 });
        const { app, warnings } = await startLogging(database, isolation, django.table);
        try {
          expect(warnings).toEqual([]);
          const [held] = await app.locks.listLocks();
          expect(held).toMatchObject({ name: 'django-west', lockedBy: 'django-host' });
          expect(held.expiresSeconds).toBeGreaterThan(50);
          expect(held.expiresSeconds).toBeLessThanOrEqual(60);
          expect(await app.locks.tryLock('django-west')).toBeNull();
        } finally {
          await app.close();
        }
      } finally {
        await django.stop();
      }
    });
    return;
  }

  const startWarnings = async (table: string) => {
    const { app, warnings } = await startLogging(database, isolation, table);
    await app.close();
    return warnings.filter((warning) => warning.includes('local time'));
  };
  const advice =
    'Django writes local times to MySQL and MariaDB when USE_TZ is False or its DATABASES entry sets TIME_ZONE (or its hosts\' clocks are off)';

  it('warns at start-up of rows stamped whole hours behind UTC (a zone west of it), which it would take over', async () => {
    const django = await djangoAt(-5);
    try {
      await django.insertLock('django-west', { expires: 60 });
      const warnings = await startWarnings(django.table);
      expect(warnings).toEqual([
        expect.stringContaining(
          `Rows that django-lockmgr inserted in the lock table "${django.table}" look stamped in local time, not UTC: the lock "django-west" ` +
            `was updated 5 h 0 min before it, and counts as expired.`,
        ),
      ]);
      expect(warnings[0]).toContain(advice);
      expect(warnings[0]).toContain('Set USE_TZ = True and no TIME_ZONE in the database\'s entry.');
    } finally {
      await django.stop();
    }
  });

  it('warns at start-up of rows stamped ahead of UTC (a zone east of it)', async () => {
    const django = await djangoAt(2);
    try {
      await django.insertLock('django-east', { expires: 60 });
      expect(await startWarnings(django.table)).toEqual([
        expect.stringContaining(`the lock "django-east" was updated 2 h 0 min ahead of the database's UTC clock. ${advice}`),
      ]);
    } finally {
      await django.stop();
    }
  });

  it('takes neither its own rows written whole hours ago, nor those of a Django service writing UTC, for local times', async () => {
    const django = await djangoAt(0);
    try {
      const { app } = await startLogging(database, isolation, django.table);
      try {
        await app.locks.getLock('nest-three-hours-ago', { expires: 60 });
        await django.insertLock('django-utc', { expires: 60 });
        // As if taken three hours ago with a one-minute lease, and not cleaned up since.
        await app.dataSource.query(
          `UPDATE \`${django.table}\` SET created_at = created_at - INTERVAL 3 HOUR, updated_at = updated_at - INTERVAL 3 HOUR,
            locked_until = locked_until - INTERVAL 3 HOUR WHERE name = 'nest-three-hours-ago'`,
        );
      } finally {
        await app.close();
      }
      expect(await startWarnings(django.table)).toEqual([]);
    } finally {
      await django.stop();
    }
  });
});
