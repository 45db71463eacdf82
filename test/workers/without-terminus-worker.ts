/**
 * An app that uses nestjs-lockmgr, run with `without-terminus` preloaded: it starts, takes a lock,
 * tries a health check, and reports what happened and whether anything loaded `@nestjs/terminus`.
 */
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { sep } from 'node:path';
import { LockMgrHealthIndicator, LockMgrModule, LockService } from '../../lib';

export interface WithoutTerminusReport {
  /** Whether this process could find @nestjs/terminus at all. */
  terminusResolvable: boolean;
  fencingToken: number;
  /** The error of the health check. */
  healthCheck: string;
  /** Whether any file of @nestjs/terminus was loaded. */
  terminusLoaded: boolean;
}

function resolvable(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
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
  const healthCheck = await app.get(LockMgrHealthIndicator).isHealthy().then(
    (result) => `resolved ${JSON.stringify(result)}`,
    (error: Error) => error.message,
  );
  await app.close();
  const report: WithoutTerminusReport = {
    terminusResolvable: resolvable('@nestjs/terminus'),
    fencingToken: lock.fencingToken,
    healthCheck,
    terminusLoaded: Object.keys(require.cache).some((file) => file.includes(`${sep}@nestjs${sep}terminus${sep}`)),
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main(process.argv[2], process.argv[3]).catch((error) => {
  console.error(error);
  process.exit(1);
});
