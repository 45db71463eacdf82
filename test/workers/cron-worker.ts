/**
 * One instance of a clustered app, as its own OS process: a `@Cron` job guarded by `@WithLock`, whose
 * every run appends a JSON line (`CronRun`) to a log shared by the instances, and every skip prints a
 * line "skipped <its clock> <reason>". It prints "ready <real epoch ms>" once its cron job is scheduled,
 * and stops on SIGTERM.
 */
import { Injectable } from '@nestjs/common';
import { Cron, ScheduleModule } from '@nestjs/schedule';
import { subscribe } from 'node:diagnostics_channel';
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { LOCKMGR_CHANNELS, LockContext, LockSkippedMessage, WithLock, WithLockOptions } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface CronWorkerSettings extends WorkerDatabase {
  instance: string;
  runLog: string;
  schedule: string;
  lockOptions: WithLockOptions;
  /** How long each run works. */
  jobMilliseconds: number;
}

/** One run of the job, as the instance saw it. */
export interface CronRun {
  instance: string;
  /** The instance's own clock when the run started: what its cron timer follows. */
  clock: number;
  fencingToken: number;
  /** Real time (epoch ms, not the instance's clock, which a test may have moved) when the run started and ended. */
  startedAt: number;
  endedAt: number;
}

/** The real time: the process's start, which no moved `Date` changes, plus the monotonic clock. */
const realNow = () => performance.timeOrigin + performance.now();

async function main(settings: CronWorkerSettings): Promise<void> {
  @Injectable()
  class TickJob {
    @Cron(settings.schedule)
    @WithLock('tick', settings.lockOptions)
    async tick() {
      const startedAt = realNow();
      const clock = Date.now();
      await sleep(settings.jobMilliseconds);
      const run: CronRun = { instance: settings.instance, clock, fencingToken: LockContext.current().fencingToken, startedAt, endedAt: realNow() };
      appendFileSync(settings.runLog, `${JSON.stringify(run)}\n`);
    }
  }

  // Each skip is reported on stdout as `skipped <instance's clock> <reason>`.
  subscribe(LOCKMGR_CHANNELS.skipped, (message) => console.log(`skipped ${Date.now()} ${(message as LockSkippedMessage).error.message}`));
  const app = await createWorkerApp(settings, { lockOptions: { lockedBy: settings.instance }, metadata: { imports: [ScheduleModule.forRoot()], providers: [TickJob] } });
  app.enableShutdownHooks();
  console.log(`ready ${Math.round(realNow())}`);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
