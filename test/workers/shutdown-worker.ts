/**
 * An app told to stop (SIGTERM, with `enableShutdownHooks`) while a `@WithLock` job runs. The job
 * prints "started", works for two seconds (longer than its lease) and appends "finished" to a file.
 * The app also holds a lock through a manager and one from `getLock`, then prints "ready".
 */
import { Injectable } from '@nestjs/common';
import { ScheduleModule, Timeout } from '@nestjs/schedule';
import { appendFileSync } from 'node:fs';
import { LockService, WithLock } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface ShutdownWorkerSettings extends WorkerDatabase {
  workLog: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(settings: ShutdownWorkerSettings): Promise<void> {
  @Injectable()
  class ReportJob {
    @Timeout(10)
    @WithLock('report', { expires: 1 })
    async build() {
      console.log('started');
      await sleep(2000);
      appendFileSync(settings.workLog, 'finished\n');
    }
  }

  const app = await createWorkerApp(settings, { metadata: { imports: [ScheduleModule.forRoot()], providers: [ReportJob] }, logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  const locks = app.get(LockService);
  await locks.manager('managed', { expires: 60 });
  await locks.getLock('kept', { expires: 60 });
  console.log('ready');
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
