/**
 * One instance of a clustered app, as its own OS process: a `@Cron` job every second guarded by
 * `@WithLock`, that appends "<tick second> <instance>" to a log shared by the instances. It prints
 * "ready <epoch ms>" once its cron job is scheduled, and stops on SIGTERM.
 */
import { Injectable } from '@nestjs/common';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import { appendFileSync } from 'node:fs';
import { WithLock } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface CronWorkerSettings extends WorkerDatabase {
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

  const app = await createWorkerApp(settings, { lockOptions: { lockedBy: settings.instance }, metadata: { imports: [ScheduleModule.forRoot()], providers: [TickJob] } });
  app.enableShutdownHooks();
  console.log(`ready ${Date.now()}`);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
