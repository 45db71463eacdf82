/**
 * One instance of a clustered app, as its own OS process: it increments a shared counter file
 * (read, pause, write: a lost update if two run at once) under a lock, `iterations` times, and
 * appends the fencing token of each write to a log, as a fenced resource would record them.
 */
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { DataSourceOptions } from 'typeorm';
import { LockMgrModule, LockService } from '../../lib';

export interface CounterWorkerSettings {
  dataSourceOptions: DataSourceOptions;
  tableName: string;
  lockName: string;
  iterations: number;
  counterFile: string;
  tokenLog: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(settings: CounterWorkerSettings): Promise<void> {
  @Module({
    imports: [
      TypeOrmModule.forRoot(settings.dataSourceOptions),
      LockMgrModule.forRoot({ tableName: settings.tableName, cleanupInterval: 0 }),
    ],
  })
  class WorkerModule {}

  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn'] });
  const locks = app.get(LockService);
  for (let i = 0; i < settings.iterations; i++) {
    await locks.withLock(
      settings.lockName,
      async (manager) => {
        const value = Number(readFileSync(settings.counterFile, 'utf8'));
        await sleep(1);
        writeFileSync(settings.counterFile, String(value + 1));
        appendFileSync(settings.tokenLog, `${manager.fencingToken}\n`);
      },
      { wait: 120, expires: 30 },
    );
  }
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
