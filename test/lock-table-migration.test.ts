import { Test } from '@nestjs/testing';
import { DataSource } from 'typeorm';
import { createLockTableMigration, LockedError, LockMgrModule, LockService } from '../lib';
import { DjangoService } from './support/django-lockmgr';
import { removeLockTable } from './support/lock-table-removal';
import { describeEachDatabase, removeSqliteFile, uniqueName } from './support/test-databases';

const DJANGO_COLUMNS = ['created_at', 'lock_process', 'locked_by', 'locked_until', 'name', 'updated_at'];

/** The columns of `table`, sorted; none when it does not exist. */
async function tableColumns(dataSource: DataSource, table: string): Promise<string[]> {
  const runner = dataSource.createQueryRunner();
  try {
    return ((await runner.getTable(table))?.columns ?? []).map((column) => column.name).sort();
  } finally {
    await runner.release();
  }
}

/** Takes the locks `names` in `table` as an app with `ensureTable` off would, and gives their fencing tokens. */
async function takeLocks(dataSource: DataSource, table: string, names: string[]): Promise<number[]> {
  const moduleRef = await Test.createTestingModule({
    imports: [LockMgrModule.forRoot({ dataSource, tableName: table, ensureTable: false, cleanupInterval: 0 })],
  }).compile();
  await moduleRef.init();
  try {
    const locks = moduleRef.get(LockService);
    const tokens: number[] = [];
    for (const name of names) tokens.push((await locks.getLock(name, { expires: 60 })).fencingToken);
    return tokens;
  } finally {
    await moduleRef.close();
  }
}

describeEachDatabase('The lock table migration', (database) => {
  const isolation = uniqueName('migration');
  const tables: string[] = [];
  let dataSource: DataSource;

  /** A data source running the migrations of `tableNames`, recorded in a migrations table of the test's own. */
  async function migratedDataSource(...tableNames: string[]): Promise<DataSource> {
    tables.push(...tableNames);
    const migrations = new DataSource({
      ...database.dataSourceOptions(isolation),
      migrations: tableNames.map((tableName) => createLockTableMigration({ tableName })),
      migrationsTableName: `${tableNames[0]}_migrations`,
    });
    return migrations.initialize();
  }

  beforeAll(async () => {
    dataSource = await new DataSource(database.dataSourceOptions(isolation)).initialize();
  });
  afterAll(async () => {
    for (const table of tables) {
      await dataSource.query(`DROP TABLE IF EXISTS ${dataSource.driver.escape(`${table}_migrations`)}`);
      await removeLockTable(dataSource, table);
    }
    await dataSource?.destroy();
    if (database.kind === 'sqlite') removeSqliteFile(isolation);
  });

  it('down then up again makes the table anew, with fencing tokens that go on growing', async () => {
    const table = uniqueName('remade');
    const migrated = await migratedDataSource(table);
    try {
      await migrated.runMigrations();
      const before = await takeLocks(migrated, table, ['first', 'second', 'third']);
      await migrated.undoLastMigration();
      expect(await tableColumns(migrated, table)).toEqual([]);
      await migrated.runMigrations();
      const [after] = await takeLocks(migrated, table, ['first']);
      expect(after).toBeGreaterThan(Math.max(...before));
    } finally {
      await migrated.destroy();
    }
  });

  it('runs beside the migration of another table, each under a name of its own', async () => {
    const [first, second] = [uniqueName('first'), uniqueName('second')];
    const migrated = await migratedDataSource(first, second);
    try {
      await migrated.runMigrations();
      const executed: { name: string }[] = await migrated.query(`SELECT name FROM ${migrated.driver.escape(`${first}_migrations`)} ORDER BY name`);
      expect(executed.map((row) => row.name)).toEqual([`CreateLockTable_${first}_1764115200000`, `CreateLockTable_${second}_1764115200000`]);
      expect(await takeLocks(migrated, first, ['job'])).toHaveLength(1);
      expect(await takeLocks(migrated, second, ['job'])).toHaveLength(1);
      await migrated.undoLastMigration();
      await migrated.undoLastMigration();
      expect(await tableColumns(migrated, first)).toEqual([]);
      expect(await tableColumns(migrated, second)).toEqual([]);
    } finally {
      await migrated.destroy();
    }
  });

  if (database.kind === 'sqlite') {
    it('down leaves a django-lockmgr table it could not complete as Django made it', async () => {
      const table = uniqueName('django');
      const django = await DjangoService.connect(database, isolation, table);
      const migrated = await migratedDataSource(table);
      try {
        await django.migrate();
        await django.insertLock('django-held', { expires: 60 });
        await migrated.runMigrations();
        await migrated.undoLastMigration();
        expect(await tableColumns(migrated, table)).toEqual(DJANGO_COLUMNS);
        expect((await django.rows()).map((row) => row.name)).toEqual(['django-held']);
      } finally {
        await migrated.destroy();
        await django.unmigrate();
        await django.stop();
      }
    });
    return;
  }

  it('down on a django-lockmgr table removes only what it added: Django’s table, rows and locks stay, and up again goes on with the tokens', async () => {
    const table = uniqueName('django');
    const django = await DjangoService.connect(database, isolation, table);
    const migrated = await migratedDataSource(table);
    try {
      await django.migrate();
      await django.insertLock('django-held', { expires: 60 });
      await migrated.runMigrations();
      const before = await takeLocks(migrated, table, ['nest-held']);
      await migrated.undoLastMigration();

      expect(await tableColumns(migrated, table)).toEqual(DJANGO_COLUMNS);
      expect((await django.rows()).map((row) => row.name)).toEqual(['django-held', 'nest-held']);
      expect(await django.getLock('django-held', 60)).toBe(false);
      expect(await django.getLock('django-later', 60)).toBe(true);
      await django.insertLock('django-inserted', { expires: 60 });

      await migrated.runMigrations();
      const moduleRef = await Test.createTestingModule({
        imports: [LockMgrModule.forRoot({ dataSource: migrated, tableName: table, ensureTable: false, cleanupInterval: 0 })],
      }).compile();
      await moduleRef.init();
      try {
        const locks = moduleRef.get(LockService);
        await expect(locks.getLock('django-later')).rejects.toBeInstanceOf(LockedError);
        expect((await locks.getLock('nest-after', { expires: 60 })).fencingToken).toBeGreaterThan(Math.max(...before));
      } finally {
        await moduleRef.close();
      }
    } finally {
      await migrated.destroy();
      // What the migration's down leaves of the table is Django's to drop.
      await django.unmigrate();
      await django.stop();
    }
  });
});
