import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DataSourceOptions } from 'typeorm';

/** The databases the suites run on. Server URLs come from the environment; the defaults are the local servers. */
export const POSTGRES_URL = process.env.LOCKMGR_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const MYSQL_URL = process.env.LOCKMGR_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

export interface TestDatabase {
  /** As shown in test titles. */
  label: string;
  kind: 'postgres' | 'mysql' | 'sqlite';
  /** Whether the server answered when the run started (global set-up); SQLite always does. */
  available: boolean;
  /** TypeORM options for a data source on this database; SQLite files are per `isolation` key. */
  dataSourceOptions(isolation: string): DataSourceOptions;
}

/** Set by the global set-up after it tried each server. */
export const AVAILABILITY_VARIABLE = (kind: string) => `LOCKMGR_TEST_${kind.toUpperCase()}_AVAILABLE`;

export function sqliteFile(isolation: string): string {
  return join(tmpdir(), `lockmgr-test-${isolation}.sqlite`);
}

export function removeSqliteFile(isolation: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${sqliteFile(isolation)}${suffix}`, { force: true });
}

export const testDatabases: TestDatabase[] = [
  {
    label: 'PostgreSQL',
    kind: 'postgres',
    available: process.env[AVAILABILITY_VARIABLE('postgres')] === '1',
    dataSourceOptions: () => ({ type: 'postgres', url: POSTGRES_URL }),
  },
  {
    label: 'MariaDB',
    kind: 'mysql',
    available: process.env[AVAILABILITY_VARIABLE('mysql')] === '1',
    dataSourceOptions: () => ({ type: 'mariadb', url: MYSQL_URL }),
  },
  {
    label: 'SQLite',
    kind: 'sqlite',
    available: true,
    dataSourceOptions: (isolation) => ({ type: 'better-sqlite3', database: sqliteFile(isolation) }),
  },
];

/** A name no other test file (nor jest worker) uses: the isolation key of tables and files. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(3).toString('hex')}`;
}

/**
 * Defines `suite` for one database. A server that was unreachable at start-up skips its suites (the
 * global set-up printed why and how to start it); under CI=true the global set-up fails instead.
 */
export function describeOnDatabase(database: TestDatabase, title: string, suite: (database: TestDatabase) => void): void {
  const define = database.available ? describe : describe.skip;
  define(`${title} on ${database.label}`, () => suite(database));
}

/** Defines `suite` once per database. */
export function describeEachDatabase(title: string, suite: (database: TestDatabase) => void): void {
  for (const database of testDatabases) describeOnDatabase(database, title, suite);
}

export function testDatabase(kind: TestDatabase['kind']): TestDatabase {
  return testDatabases.find((database) => database.kind === kind)!;
}

/** `database` with its data source configured as an app may configure it: `options` added to (or replacing) its own. */
export function withDataSourceOptions(database: TestDatabase, options: Partial<DataSourceOptions>): TestDatabase {
  return { ...database, dataSourceOptions: (isolation) => ({ ...database.dataSourceOptions(isolation), ...options }) as DataSourceOptions };
}

/**
 * Starts `run` on every available database before the file's tests, all at the same time (each mostly
 * waits: for ticks, leases, processes), and gives each database's promise by its kind. A failure is
 * reported by the test that awaits it.
 */
export function startOnEachDatabase<T>(run: (database: TestDatabase) => Promise<T>): Map<TestDatabase['kind'], Promise<T>> {
  const started = new Map<TestDatabase['kind'], Promise<T>>();
  beforeAll(() => {
    for (const database of testDatabases.filter((candidate) => candidate.available)) {
      const running = run(database);
      running.catch(() => undefined);
      started.set(database.kind, running);
    }
  });
  return started;
}
