import { Module, Provider, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource, DataSourceOptions } from 'typeorm';
import { LockMgrModule, LockMgrModuleOptions, LockService } from '../lib';
import { removeLockTable } from '../test/support/lock-table-removal';

/** The servers measured: the local ones, or those the test suite is pointed at. */
export const POSTGRES_URL = process.env.LOCKMGR_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.LOCKMGR_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const REDIS_URL = process.env.LOCKMGR_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
/** Names the run's process to the processes it starts, so that they share its SQLite file. */
export const BENCH_RUN_VARIABLE = 'LOCKMGR_BENCH_RUN';
/** The SQLite file of the run: one file for the run's process and every process it starts, as app instances on one host share it. */
export const SQLITE_FILE = join(tmpdir(), `lockmgr-bench-${process.env[BENCH_RUN_VARIABLE] ?? process.pid}.sqlite`);

/** How the many-waits process names its connections, so they can be counted. */
export const WAITS_APPLICATION_NAME = 'lockmgr-bench-waits';

export type BenchDatabase = 'postgres' | 'mariadb' | 'sqlite';

export function benchDataSourceOptions(database: BenchDatabase, extra: Partial<DataSourceOptions> = {}): DataSourceOptions {
  const base: DataSourceOptions =
    database === 'postgres'
      ? { type: 'postgres', url: POSTGRES_URL }
      : database === 'mariadb'
        ? { type: 'mariadb', url: MYSQL_URL }
        : { type: 'better-sqlite3', database: SQLITE_FILE };
  return { ...base, ...extra } as DataSourceOptions;
}

export function removeSqliteFile(): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${SQLITE_FILE}${suffix}`, { force: true });
}

/** The lock tables this run works in, by database, so that it can drop them when it ends. */
const tables = new Map<BenchDatabase, Set<string>>();

/** Records that lock apps of this run, in this process or in the processes it starts, use `tableName`. */
export function usesTable(database: BenchDatabase, tableName: string): string {
  if (!tables.has(database)) tables.set(database, new Set());
  tables.get(database)!.add(tableName);
  return tableName;
}

/** Drops the lock tables the run used (with their fencing-token sequence or counter), leaving the servers as it found them. */
export async function dropBenchTables(): Promise<void> {
  for (const [database, names] of tables) {
    if (database === 'sqlite') {
      removeSqliteFile();
      continue;
    }
    const dataSource = await new DataSource(benchDataSourceOptions(database)).initialize();
    try {
      for (const tableName of names) await removeLockTable(dataSource, tableName);
    } finally {
      await dataSource.destroy();
    }
  }
}

export interface BenchApp {
  locks: LockService;
  get<T>(provider: Type<T>): T;
  close(): Promise<void>;
}

/** A Nest application context with the lock module, as an app instance would have it. */
export async function createBenchApp(
  database: BenchDatabase,
  options: LockMgrModuleOptions & { tableName: string },
  dataSourceExtra: Partial<DataSourceOptions> = {},
  providers: Provider[] = [],
): Promise<BenchApp> {
  usesTable(database, options.tableName);
  // Each app is a Nest application of its own, with its own default data source, as an app instance is.
  @Module({
    imports: [
      TypeOrmModule.forRoot(benchDataSourceOptions(database, dataSourceExtra)),
      LockMgrModule.forRoot({ cleanupInterval: 0, ...options }),
    ],
    providers,
  })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: ['error', 'warn'] });
  return { locks: app.get(LockService), get: (provider) => app.get(provider), close: () => app.close() };
}
