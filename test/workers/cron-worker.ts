/**
 * One instance of a clustered app, as its own OS process: a `@Cron` job every second guarded by
 * `@WithLock`, that appends "<tick second> <instance>" to a log shared by the instances. It prints
 * "ready <epoch ms>" once its cron job is scheduled, and stops on SIGTERM.
 */
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { appendFileSync } from 'node:fs';
import type { DataSourceOptions } from 'typeorm';
import { LockMgrModule, WithLock } from '../../lib';

export interface CronWorkerSettings {
  dataSourceOptions: DataSourceOptions;
  tableName: string;
  instance: string;
  tickLog: string;
}

async function main(settings: CronWorkerSettings): Promise<void> {
  @Injectable()
  class TickJob {
    // minHold covers the instances' timers firing a little apart, and ends well before the next tick.
    @Cron('* * * * * *')
    @WithLock('tick', { expires: 5, minHold: 0.5 })
    async tick() {
      appendFileSync(settings.tickLog, `${Math.floor(Date.now() / 1000)} ${settings.instance}\n`);
    }
  }

  @Module({
    imports: [
      ScheduleModule.forRoot(),
      TypeOrmModule.forRoot(settings.dataSourceOptions),
      LockMgrModule.forRoot({ tableName: settings.tableName, cleanupInterval: 0, lockedBy: settings.instance }),
    ],
    providers: [TickJob],
  })
  class WorkerModule {}

  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  console.log(`ready ${Date.now()}`);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
