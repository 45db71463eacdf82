/**
 * An app that uses nestjs-lockmgr, run with `without-packages` preloaded: it starts, takes a lock
 * directly and through `withLock`, tries a health check, and reports what happened and, for each
 * package named in LOCKMGR_REPORTED_PACKAGES, whether this process could find it and whether anything
 * loaded it.
 */
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { sep } from 'node:path';
import { LockMgrHealthIndicator, LockMgrModule, LockService } from '../../lib';

export interface WithoutPackagesReport {
  packages: Record<string, { resolvable: boolean; loaded: boolean }>;
  fencingToken: number;
  withLock: string;
  /** What the health check resolved to, or its error. */
  healthCheck: string;
}

function resolvable(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

function loaded(name: string): boolean {
  const folder = `${sep}node_modules${sep}${name.split('/').join(sep)}${sep}`;
  return Object.keys(require.cache).some((file) => file.includes(folder));
}

async function main(sqliteFile: string, tableName: string): Promise<void> {
  @Module({
    imports: [
      TypeOrmModule.forRoot({ type: 'better-sqlite3', database: sqliteFile }),
      LockMgrModule.forRoot({ tableName, cleanupInterval: 0 }),
    ],
  })
  class AppModule {}

  const app = await NestFactory.createApplicationContext(AppModule, { logger: ['error', 'warn'] });
  const locks = app.get(LockService);
  const lock = await locks.getLock('job');
  await locks.unlock(lock);
  const withLock = await locks.withLock('job', () => 'ran');
  const healthCheck = await app.get(LockMgrHealthIndicator).isHealthy().then(
    (result) => `resolved ${JSON.stringify(result)}`,
    (error: Error) => error.message,
  );
  await app.close();
  const reported = (process.env.LOCKMGR_REPORTED_PACKAGES ?? '').split(',');
  const report: WithoutPackagesReport = {
    packages: Object.fromEntries(reported.map((name) => [name, { resolvable: resolvable(name), loaded: loaded(name) }])),
    fencingToken: lock.fencingToken,
    withLock,
    healthCheck,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main(process.argv[2], process.argv[3]).catch((error) => {
  console.error(error);
  process.exit(1);
});
