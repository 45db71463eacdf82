import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { createLockTableMigration, LockedError, LockMgrModule, LockService } from '../lib';
import { DjangoService } from './support/django-lockmgr';
import { createLockApp, dropLockTable, LockApp, tableRows } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

/** Owner tokens from a cryptographic source: a version-4 UUID (PostgreSQL), or 32 hex digits of `RANDOM_BYTES(16)` (MariaDB). */
const RANDOM_OWNER = {
  postgres: /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  mysql: /^[0-9a-f]{32}$/,
};

describeEachDatabase('Sharing the lock table django-lockmgr created', (database) => {
  const isolation = uniqueName('django');
  let django: DjangoService;

  beforeAll(async () => {
    django = await DjangoService.connect(database, isolation, isolation);
    await django.migrate();
  });
  afterAll(async () => {
    await django?.stop();
    await dropLockTable(database, isolation);
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
  const token = async (name: string) => Number((await django.rows()).find((row) => row.name === name)!.fencing_token);
  const randomOwner = RANDOM_OWNER[database.kind as 'postgres' | 'mysql'];

  beforeAll(async () => {
    // Locks Django holds before the Nest app ever starts.
    await django.insertLock('django-held', { expires: 60, lockedBy: 'django-host' });
    await django.insertLock('django-forever', { expires: null });
    app = await createLockApp(database, isolation);
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
      await migratedDjango.stop();
      await migrated.query(`DROP TABLE IF EXISTS ${migrated.driver.escape(`${table}_migrations`)}`);
      await migrated.destroy();
      await dropLockTable(database, isolation, table);
    }
  });
});
