/**
 * An app instance in its own process that reports how it sees a set of locks, and takes one of its
 * own: run with a skewed clock, it shows whether instances with different clocks agree.
 */
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { DataSourceOptions } from 'typeorm';
import { LockMgrModule, LockService } from '../../lib';

export interface ProbeSettings {
  dataSourceOptions: DataSourceOptions;
  tableName: string;
  /** Locks to look at. */
  names: string[];
  /** A lock to take, with its lease. */
  take?: { name: string; expires: number };
}

export interface LockView {
  locked: boolean;
  free: boolean;
  expiresSeconds: number | null;
  expired: boolean | null;
}

export interface ProbeReport {
  clockOffByMs: number;
  views: Record<string, LockView>;
  taken?: { expiresSeconds: number | null; expired: boolean };
}

async function main(settings: ProbeSettings): Promise<void> {
  @Module({
    imports: [
      TypeOrmModule.forRoot(settings.dataSourceOptions),
      LockMgrModule.forRoot({ tableName: settings.tableName, cleanupInterval: 0 }),
    ],
  })
  class ProbeModule {}

  const app = await NestFactory.createApplicationContext(ProbeModule, { logger: ['error', 'warn'] });
  const locks = app.get(LockService);
  const report: ProbeReport = { clockOffByMs: Date.now() - performance.timeOrigin - performance.now(), views: {} };
  if (settings.take) {
    const lock = await locks.getLock(settings.take.name, { expires: settings.take.expires });
    report.taken = { expiresSeconds: lock.expiresSeconds, expired: lock.expired };
  }
  const listed = await locks.listLocks();
  for (const name of settings.names) {
    const lock = listed.find((candidate) => candidate.name === name);
    const locked = await locks.isLocked(name);
    const free = await locks.tryLock(name, { expires: 0.001 });
    report.views[name] = {
      locked,
      free: free !== null,
      expiresSeconds: lock ? lock.expiresSeconds : null,
      expired: lock ? lock.expired : null,
    };
  }
  await app.close();
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
