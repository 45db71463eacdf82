import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { LockMgrModule, LockMgrModuleOptions, LockService } from '../../lib';
import { removeSqliteFile, TestDatabase } from './test-databases';

export interface LockApp {
  locks: LockService;
  dataSource: DataSource;
  close(): Promise<void>;
}

/**
 * A Nest application context with the app's TypeORM data source and the lock module, as an app would
 * have them. `isolation` names the lock table (and the SQLite file), so test files never collide.
 */
export async function createLockApp(
  database: TestDatabase,
  isolation: string,
  options: LockMgrModuleOptions = {},
): Promise<LockApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      TypeOrmModule.forRoot(database.dataSourceOptions(isolation)),
      LockMgrModule.forRoot({ tableName: isolation, cleanupInterval: 0, ...options }),
    ],
  }).compile();
  await moduleRef.init();
  return { locks: moduleRef.get(LockService), dataSource: moduleRef.get(DataSource), close: () => moduleRef.close() };
}

/** Drops what a test file created: its lock table (with its sequence or counter) or its SQLite file. */
export async function dropLockTable(database: TestDatabase, isolation: string): Promise<void> {
  if (database.kind === 'sqlite') return removeSqliteFile(isolation);
  const dataSource = new DataSource(database.dataSourceOptions(isolation));
  await dataSource.initialize();
  try {
    await dataSource.query(`DROP TABLE IF EXISTS "${isolation}"`);
  } finally {
    await dataSource.destroy();
  }
}

/** Rows in the lock table, expired or not: what a failed call must leave untouched. */
export async function tableRows(app: LockApp, isolation: string): Promise<unknown[]> {
  return app.dataSource.query(`SELECT * FROM "${isolation}" ORDER BY name`);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
