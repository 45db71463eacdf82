import { Inject, Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { createLockTableMigration, getLockServiceToken, LockMgrModule, LockMgrModuleOptions, LockMgrOptionsFactory, LockService } from '../lib';
import { dropLockTable } from './support/lock-app';
import { removeLockTable } from './support/lock-table-removal';
import { describeEachDatabase, removeSqliteFile, testDatabases, uniqueName } from './support/test-databases';

const LOCK_SETTINGS = 'LOCK_SETTINGS';

describeEachDatabase('LockMgrModule', (database) => {
  const isolation = uniqueName('module');
  /** For apps that fail to start: Nest does not close what it opened before the failure, so the test does. */
  let dataSource: DataSource;
  beforeAll(async () => {
    dataSource = await new DataSource(database.dataSourceOptions(isolation)).initialize();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropLockTable(database, isolation);
  });

  async function tableExists(dataSource: DataSource, table: string): Promise<boolean> {
    const runner = dataSource.createQueryRunner();
    try {
      return await runner.hasTable(table);
    } finally {
      await runner.release();
    }
  }

  it('forRootAsync takes its options from a factory with injected dependencies', async () => {
    @Module({ providers: [{ provide: LOCK_SETTINGS, useValue: { lease: 42, host: 'from-config' } }], exports: [LOCK_SETTINGS] })
    class SettingsModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(database.dataSourceOptions(isolation)),
        LockMgrModule.forRootAsync({
          imports: [SettingsModule],
          inject: [LOCK_SETTINGS],
          useFactory: (settings: { lease: number; host: string }): LockMgrModuleOptions => ({
            tableName: isolation,
            defaultExpires: settings.lease,
            lockedBy: settings.host,
            cleanupInterval: 0,
          }),
        }),
      ],
    }).compile();
    await moduleRef.init();
    try {
      const lock = await moduleRef.get(LockService).getLock('async');
      expect(lock.lockedBy).toBe('from-config');
      expect(lock.expiresSeconds).toBeGreaterThan(40);
      expect(lock.expiresSeconds).toBeLessThanOrEqual(42);
    } finally {
      await moduleRef.close();
    }
  });

  it('forRootAsync takes its options from a class implementing LockMgrOptionsFactory, with injected dependencies', async () => {
    @Module({ providers: [{ provide: LOCK_SETTINGS, useValue: { host: 'from-class' } }], exports: [LOCK_SETTINGS] })
    class SettingsModule {}
    @Injectable()
    class LockSettings implements LockMgrOptionsFactory {
      constructor(@Inject(LOCK_SETTINGS) private readonly settings: { host: string }) {}

      async createLockMgrOptions(): Promise<LockMgrModuleOptions> {
        return { tableName: isolation, lockedBy: this.settings.host, cleanupInterval: 0 };
      }
    }
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(database.dataSourceOptions(isolation)),
        LockMgrModule.forRootAsync({ imports: [SettingsModule], useClass: LockSettings }),
      ],
    }).compile();
    await moduleRef.init();
    try {
      expect((await moduleRef.get(LockService).getLock('class')).lockedBy).toBe('from-class');
    } finally {
      await moduleRef.close();
    }
  });

  it('uses a second, non-default data source by name, leaving the default one alone', async () => {
    const defaultIsolation = uniqueName('default');
    const sqlite = testDatabases.find((candidate) => candidate.kind === 'sqlite')!;
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot(sqlite.dataSourceOptions(defaultIsolation)),
        TypeOrmModule.forRoot({ ...database.dataSourceOptions(isolation), name: 'locks' }),
        LockMgrModule.forRoot({ dataSource: 'locks', tableName: isolation, cleanupInterval: 0 }),
      ],
    }).compile();
    await moduleRef.init();
    try {
      await moduleRef.get<LockService>(getLockServiceToken('locks')).getLock('named');
      expect(await tableExists(moduleRef.get<DataSource>(getDataSourceToken('locks')), isolation)).toBe(true);
      expect(await tableExists(moduleRef.get(DataSource), isolation)).toBe(false);
    } finally {
      await moduleRef.close();
      removeSqliteFile(defaultIsolation);
    }
  });

  it('uses a DataSource instance given to forRootAsync', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrModule.forRootAsync({ dataSource, useFactory: () => ({ tableName: isolation, cleanupInterval: 0 }) })],
    }).compile();
    await moduleRef.init();
    try {
      await moduleRef.get(LockService).getLock('instance');
      expect(await tableExists(dataSource, isolation)).toBe(true);
    } finally {
      await moduleRef.close();
    }
  });

  it('creates the table safely when many instances start at once', async () => {
    const table = uniqueName('startup');
    const start = () =>
      Test.createTestingModule({
        imports: [TypeOrmModule.forRoot(database.dataSourceOptions(isolation)), LockMgrModule.forRoot({ tableName: table, cleanupInterval: 0 })],
      })
        .compile()
        .then(async (moduleRef) => (await moduleRef.init(), moduleRef));
    const instances = await Promise.all(Array.from({ length: 6 }, start));
    try {
      const tokens = await Promise.all(instances.map((instance, i) => instance.get(LockService).getLock(`start-${i}`)));
      expect(new Set(tokens.map((lock) => lock.fencingToken)).size).toBe(6);
    } finally {
      await Promise.all(instances.map((instance) => instance.close()));
      await dropLockTable(database, isolation, table);
    }
  });

  it('works with the table from the migration and ensureTable off', async () => {
    const table = uniqueName('migrated');
    const Migration = createLockTableMigration({ tableName: table });
    const migrated = new DataSource({ ...database.dataSourceOptions(isolation), migrations: [Migration], migrationsTableName: `${table}_migrations` });
    await migrated.initialize();
    try {
      await migrated.runMigrations();
      const moduleRef = await Test.createTestingModule({
        imports: [LockMgrModule.forRootAsync({ dataSource: migrated, useFactory: () => ({ tableName: table, ensureTable: false, cleanupInterval: 0 }) })],
      }).compile();
      await moduleRef.init();
      const lock = await moduleRef.get(LockService).getLock('migrated', { expires: 60 });
      expect(lock.fencingToken).toBeGreaterThan(0);
      await moduleRef.close();
      await migrated.undoLastMigration();
      expect(await tableExists(migrated, table)).toBe(false);
    } finally {
      await migrated.query(`DROP TABLE IF EXISTS ${migrated.driver.escape(`${table}_migrations`)}`);
      await removeLockTable(migrated, table);
      await migrated.destroy();
    }
  });

  it('refuses a data source that is not a name nor a DataSource', () => {
    expect(() => LockMgrModule.forRoot({ dataSource: '' })).toThrow(/option dataSource must be the name of a TypeORM data source/);
    expect(() => LockMgrModule.forRoot({ dataSource: 42 as never })).toThrow(/option dataSource must be the name/);
  });

  it('stops at start-up, naming the problem, when the table is missing and ensureTable is off', async () => {
    const start = Test.createTestingModule({
      imports: [LockMgrModule.forRoot({ dataSource, tableName: 'no_such_lock_table', ensureTable: false })],
    })
      .compile()
      .then((moduleRef) => moduleRef.init());
    await expect(start).rejects.toThrow(/lock table .*no_such_lock_table.* does not exist. Turn on the ensureTable option/);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a table name that is not an identifier', { tableName: 'locks; DROP TABLE x' }, /option tableName must be a plain SQL identifier/],
    ['an over-long table name', { tableName: 't'.repeat(41) }, /option tableName must be at most 40 characters/],
    ['a negative default lease', { defaultExpires: -1 }, /option defaultExpires must be at least 0/],
    ['a string clean-up interval', { cleanupInterval: '60' }, /option cleanupInterval must be a number/],
    ['a clean-up interval longer than a timer can wait', { cleanupInterval: 30 * 24 * 3600 }, /option cleanupInterval must be at most 2147483 seconds/],
    ['a pool of zero', { poolSize: 0 }, /option poolSize must be an integer from 1/],
    ['a string ensureTable', { ensureTable: 'yes' }, /option ensureTable must be true or false/],
    ['an unknown option', { tablename: 'x' }, /unknown option "tablename"/],
  ])('refuses to start with %s, naming the option', async (_description, options, message) => {
    const start = async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [LockMgrModule.forRoot({ dataSource, ...options } as LockMgrModuleOptions)],
      }).compile();
      await moduleRef.init();
      await moduleRef.close();
    };
    await expect(start()).rejects.toThrow(message);
  });
});
