import { Injectable } from '@nestjs/common';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { Test, TestingModule } from '@nestjs/testing';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { getLockServiceToken, InjectLockService, LeaderOnly, LockContext, LockMgrModule, LockService, WithLock } from '../lib';
import { LockMgrTestingModule } from '../lib/testing';
import { dropLockTable, until } from './support/lock-app';
import { removeSqliteFile, testDatabase, uniqueName } from './support/test-databases';

const postgres = testDatabase('postgres');
const mariadb = testDatabase('mysql');
const define = postgres.available && mariadb.available ? describe : describe.skip;

/** An app's service that locks in both databases: its orders in PostgreSQL, its audit export in MariaDB. */
@Injectable()
class Exports {
  constructor(
    readonly locks: LockService,
    @InjectLockService('audit') readonly auditLocks: LockService,
  ) {}

  @WithLock('export', { dataSource: 'audit' })
  async auditExport(): Promise<string> {
    return LockContext.current().name;
  }

  @WithLock('export')
  async orderExport(): Promise<boolean> {
    return this.auditLocks.isLocked('export');
  }
}

async function twoDatabaseApp(ordersTable: string, auditTable: string): Promise<TestingModule> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(postgres.dataSourceOptions(ordersTable)),
      TypeOrmModule.forRoot({ ...mariadb.dataSourceOptions(auditTable), name: 'audit' }),
      LockMgrModule.forRoot({ tableName: ordersTable, cleanupInterval: 0 }),
      LockMgrModule.forRoot({ dataSource: 'audit', tableName: auditTable, cleanupInterval: 0 }),
    ],
    providers: [Exports],
  }).compile();
  return moduleRef.init();
}

async function lockNames(dataSource: DataSource, table: string): Promise<string[]> {
  const rows: { name: string }[] = await dataSource.query(`SELECT name FROM ${table}`);
  return rows.map((row) => row.name);
}

define('An app with lock tables in PostgreSQL and MariaDB', () => {
  const ordersTable = uniqueName('orders_locks');
  const auditTable = uniqueName('audit_locks');
  let app: TestingModule;
  beforeAll(async () => {
    app = await twoDatabaseApp(ordersTable, auditTable);
  });
  afterAll(async () => {
    await app?.close();
    await dropLockTable(postgres, ordersTable);
    await dropLockTable(mariadb, auditTable);
  });

  it('injects each data source its own LockService, each locking in its own database', async () => {
    const exports = app.get(Exports);
    expect(exports.auditLocks).not.toBe(exports.locks);
    expect(app.get(getLockServiceToken('audit'))).toBe(exports.auditLocks);
    await exports.locks.getLock('orders');
    await exports.auditLocks.getLock('audit');
    expect(await lockNames(app.get(DataSource), ordersTable)).toEqual(['orders']);
    expect(await lockNames(app.get<DataSource>(getDataSourceToken('audit')), auditTable)).toEqual(['audit']);
    expect(await exports.locks.isLocked('audit')).toBe(false);
  });

  it('takes a @WithLock lock in the table of the data source it names', async () => {
    const exports = app.get(Exports);
    const audit = app.get<DataSource>(getDataSourceToken('audit'));
    const held = await exports.auditLocks.getLock('export');
    await expect(exports.auditExport()).rejects.toThrow('Lock "export" is held');
    // The same name in the other data source is another lock.
    expect(await exports.orderExport()).toBe(true);
    await exports.auditLocks.unlock(held);
    expect(await exports.auditExport()).toBe('export');
    expect(await lockNames(audit, auditTable)).not.toContain('export');
  });
});

describe('Two lock modules on one data source', () => {
  it('fail at start-up with a message that says so, on the same table and on another', async () => {
    for (const second of ['same', 'other']) {
      const table = uniqueName('claimed');
      const sqlite = testDatabase('sqlite');
      const building = Test.createTestingModule({
        imports: [
          TypeOrmModule.forRoot(sqlite.dataSourceOptions(table)),
          LockMgrModule.forRoot({ tableName: table, cleanupInterval: 0 }),
          LockMgrModule.forRoot({ tableName: second === 'same' ? table : `${table}_2`, cleanupInterval: 0, defaultExpires: 30 }),
        ],
      }).compile();
      await expect(building).rejects.toThrow(second === 'same' ? `on the same data source and table "${table}"` : 'on the same data source (tables');
      await dropLockTable(sqlite, table);
    }
  });

  it('leave the table to the next app once the first one is closed', async () => {
    const table = uniqueName('reclaimed');
    const sqlite = testDatabase('sqlite');
    const dataSource = await new DataSource(sqlite.dataSourceOptions(table)).initialize();
    try {
      for (let round = 0; round < 2; round++) {
        const moduleRef = await Test.createTestingModule({
          imports: [LockMgrModule.forRoot({ dataSource, tableName: table, cleanupInterval: 0 })],
        }).compile();
        await moduleRef.init();
        await moduleRef.get(LockService).getLock(`round ${round}`);
        await moduleRef.close();
      }
    } finally {
      await dataSource.destroy();
      await dropLockTable(sqlite, table);
    }
  });
});

describe('Lock modules on two data sources, each with the default table name', () => {
  it('each run a clean-up task of their own, named after the data source and the table', async () => {
    const sqlite = testDatabase('sqlite');
    const [orders, audit] = [uniqueName('orders'), uniqueName('audit')];
    const moduleRef = await Test.createTestingModule({
      imports: [
        ScheduleModule.forRoot(),
        TypeOrmModule.forRoot(sqlite.dataSourceOptions(orders)),
        TypeOrmModule.forRoot({ ...sqlite.dataSourceOptions(audit), name: 'audit' }),
        LockMgrModule.forRoot({ cleanupInterval: 0.1 }),
        LockMgrModule.forRoot({ dataSource: 'audit', cleanupInterval: 0.1 }),
      ],
      providers: [Exports],
    }).compile();
    try {
      await moduleRef.init();
      expect(moduleRef.get(SchedulerRegistry).getIntervals().sort()).toEqual(['lockmgr-cleanup:audit:lockmgr_lock', 'lockmgr-cleanup:default:lockmgr_lock']);
      const tables = [moduleRef.get(DataSource), moduleRef.get<DataSource>(getDataSourceToken('audit'))];
      const { locks, auditLocks } = moduleRef.get(Exports);
      await locks.getLock('expiring', { expires: 0.1 });
      await auditLocks.getLock('expiring', { expires: 0.1 });
      expect((await Promise.all(tables.map((dataSource) => lockNames(dataSource, 'lockmgr_lock')))).flat()).toEqual(['expiring', 'expiring']);
      await until(async () => (await Promise.all(tables.map((dataSource) => lockNames(dataSource, 'lockmgr_lock')))).flat().length === 0);
    } finally {
      await moduleRef.close().finally(() => {
        removeSqliteFile(orders);
        removeSqliteFile(audit);
      });
    }
  });
});

/** A job that must run on one instance at a time, led in the default data source's table. */
@Injectable()
class Indexer {
  @LeaderOnly('indexer', { expires: 5 })
  index(): boolean {
    return true;
  }
}

describe('The testing module standing in for a named data source', () => {
  it('gives the LockService that @InjectLockService and @WithLock find', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrTestingModule.forRoot(), LockMgrTestingModule.forRoot({ dataSource: 'audit' })],
      providers: [Exports],
    }).compile();
    await moduleRef.init();
    const exports = moduleRef.get(Exports);
    await exports.auditLocks.getLock('export');
    await expect(exports.auditExport()).rejects.toThrow('Lock "export" is held');
    expect(await exports.orderExport()).toBe(true);
    await moduleRef.close();
  });

  it('leads @LeaderOnly names in the default data source only', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrTestingModule.forRoot(), LockMgrTestingModule.forRoot({ dataSource: 'audit' })],
      providers: [Exports, Indexer],
    }).compile();
    await moduleRef.init();
    const exports = moduleRef.get(Exports);
    await until(() => moduleRef.get(Indexer).index() === true);
    expect(await exports.locks.isLocked('indexer')).toBe(true);
    expect(await exports.auditLocks.isLocked('indexer')).toBe(false);
    await moduleRef.close();
  });
});

describe('A data source name that is not one', () => {
  it('is refused by name, wherever it is given, before anything starts', () => {
    expect(() => WithLock('x', { dataSource: '' })).toThrow('@WithLock option dataSource must be the name of a TypeORM data source.');
    expect(() => LockMgrTestingModule.forRoot({ dataSource: 7 as never })).toThrow('LockMgrTestingModule option dataSource must be the name of a TypeORM data source.');
    expect(() => LockMgrModule.forRoot({ dataSource: '' })).toThrow('LockMgrModule option dataSource must be the name of a TypeORM data source or a DataSource instance.');
  });
});
