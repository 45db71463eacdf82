import type { LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test, TestingModuleBuilder } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, QueryRunner } from 'typeorm';
import { LockMgrModule, LockMgrModuleOptions, LockService } from '../../lib';
import type { LockDialect } from '../../lib/dialects/lock-dialect';
import { LOCK_DIALECT } from '../../lib/lockmgr.constants';
import { removeLockTable } from './lock-table-removal';
import { removeSqliteFile, TestDatabase } from './test-databases';

export interface LockApp {
  locks: LockService;
  dataSource: DataSource;
  /** The database dialect behind `locks`: fault tests hold up or fail its calls. */
  dialect: LockDialect;
  close(): Promise<void>;
}

/** The app's TypeORM data source and the lock module, next to whatever else a test app needs. */
export function lockTestingModule(
  database: TestDatabase,
  isolation: string,
  options: LockMgrModuleOptions = {},
  metadata: ModuleMetadata = {},
): TestingModuleBuilder {
  return Test.createTestingModule({
    ...metadata,
    imports: [
      TypeOrmModule.forRoot(database.dataSourceOptions(isolation)),
      LockMgrModule.forRoot({ tableName: isolation, cleanupInterval: 0, ...options }),
      ...(metadata.imports ?? []),
    ],
  });
}

/**
 * A Nest application context with the app's TypeORM data source and the lock module, as an app would
 * have them. `isolation` names the lock table (and the SQLite file), so test files never collide.
 * With `logger`, Nest logs there from the start (until another app of the process is compiled: Nest has one logger per process).
 */
export async function createLockApp(
  database: TestDatabase,
  isolation: string,
  options: LockMgrModuleOptions = {},
  logger?: LoggerService,
): Promise<LockApp> {
  const builder = lockTestingModule(database, isolation, options);
  if (logger) builder.setLogger(logger);
  const moduleRef = await builder.compile();
  await moduleRef.init();
  return {
    locks: moduleRef.get(LockService),
    dataSource: moduleRef.get(DataSource),
    dialect: moduleRef.get(LOCK_DIALECT),
    close: () => moduleRef.close(),
  };
}

/**
 * The lock app of one `describe` block, on the table `isolation`: started before its tests (and
 * handed to `started`), closed after them, and its table dropped.
 */
export function useLockApp(
  database: TestDatabase,
  isolation: string,
  started: (app: LockApp) => unknown,
  options: LockMgrModuleOptions = {},
): void {
  useLockApps(database, isolation, 1, ([app]) => started(app), options);
}

/** `count` instances of a lock app on one table, each with connections of its own: a cluster for one `describe` block. */
export function useLockApps(
  database: TestDatabase,
  isolation: string,
  count: number,
  started: (apps: LockApp[]) => unknown,
  options: LockMgrModuleOptions = {},
): void {
  const apps: LockApp[] = [];
  beforeAll(async () => {
    for (let i = 0; i < count; i++) apps.push(await createLockApp(database, isolation, options));
    await started(apps);
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await dropLockTable(database, isolation);
  });
}

/** A lock app for a `describe` block, holding the lock `held`: something for a command that connects to find. */
export function useHeldLock(database: TestDatabase, isolation: string): () => LockApp {
  let holder: LockApp;
  useLockApp(database, isolation, async (app) => {
    holder = app;
    await app.locks.getLock('held', { expires: 600 });
  });
  return () => holder;
}

/**
 * Drops what a test file created: a lock table with its fencing-token sequence or counter, or the
 * SQLite file named after `isolation` when the table is named so too.
 */
export async function dropLockTable(database: TestDatabase, isolation: string, tableName = isolation): Promise<void> {
  if (database.kind === 'sqlite' && tableName === isolation) return removeSqliteFile(isolation);
  const dataSource = await new DataSource(database.dataSourceOptions(isolation)).initialize();
  try {
    await removeLockTable(dataSource, tableName);
  } finally {
    await dataSource.destroy();
  }
}

/** Rows in the lock table, expired or not: what a failed call must leave untouched. */
export async function tableRows(app: LockApp, isolation: string): Promise<unknown[]> {
  return app.dataSource.query(`SELECT * FROM ${app.dataSource.driver.escape(isolation)} ORDER BY name`);
}

/** Another connection's open transaction, holding a row of the lock table until `letGo` commits it. */
export interface HeldRow {
  /** The connection holding the row (to ask the server about it). */
  runner: QueryRunner;
  letGo(): Promise<void>;
}

/**
 * Locks the row of `name` (`SELECT … FOR UPDATE`) in a transaction on another connection of the app's
 * data source, as a Django service's `get_lock` or an operator's query holds it.
 */
export async function holdRow(app: LockApp, table: string, name: string): Promise<HeldRow> {
  const runner = app.dataSource.createQueryRunner();
  await runner.connect();
  await runner.startTransaction();
  const placeholder = app.dataSource.options.type === 'postgres' ? '$1' : '?';
  await runner.query(`SELECT name FROM ${app.dataSource.driver.escape(table)} WHERE name = ${placeholder} FOR UPDATE`, [name]);
  return {
    runner,
    letGo: async () => {
      try {
        await runner.commitTransaction();
      } finally {
        await runner.release();
      }
    },
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A promise the test settles by hand: to hold a locked method in the middle of its work. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((settle) => (resolve = settle));
  return { promise, resolve };
}

/** Polls `condition` every 10 ms until it holds, failing after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const giveUpAt = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > giveUpAt) throw new Error(`Condition not met within ${timeoutMs} ms: ${condition}`);
    await sleep(10);
  }
}
