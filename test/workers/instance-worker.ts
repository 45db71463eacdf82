/**
 * One light instance of an app, as its own OS process: the app's TypeORM data source and the lock module
 * (a Nest application context, no HTTP server), the app's own work (a query a second on its own pool), a
 * `@Cron` job under `@WithLock` that records each run in a table through the app's data source, and lock
 * calls on command. It prints "ready <epoch ms>" once its cron job is scheduled, and stops on SIGTERM.
 *
 * Commands come as JSON lines on its standard input (`InstanceCommand`), each answered with a JSON line
 * (`InstanceReport`): a burst of concurrent `getLock`/`unlock` pairs at a given time; a wait for a lock
 * this instance holds itself (so that it needs its listener), until the command that ends it.
 */
import { Injectable } from '@nestjs/common';
import { Cron, Interval, ScheduleModule } from '@nestjs/schedule';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import { LockContext, LockEntity, LockMgrModuleOptions, LockService, WithLock } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface InstanceWorkerSettings extends WorkerDatabase {
  instance: string;
  schedule: string;
  /** The table each run is recorded in: `(instance text, clock bigint, fencing_token bigint)`. */
  runsTable: string;
  lockOptions: LockMgrModuleOptions;
}

export type InstanceCommand =
  /** `calls` concurrent getLock/unlock pairs on names of this instance's own, started at `at` (epoch ms). */
  | { burst: number; at: number }
  /** Takes `wait` and waits for it too, answering once the wait has begun. */
  | { wait: string }
  /** Lets go of the lock `endWait` and answers once the wait for it has taken it and let go of it. */
  | { endWait: string };

/** The answer to a burst: how long it took, and the message of each call that failed. */
export interface BurstReport {
  burst: number;
  milliseconds: number;
  failures: string[];
}

export type InstanceReport = BurstReport | { waiting: string } | { waitEnded: string; error?: string };

const report = (event: InstanceReport) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function burst(locks: LockService, instance: string, calls: number, at: number): Promise<void> {
  await sleep(Math.max(0, at - Date.now()));
  const startedAt = performance.now();
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: calls }, async (_, index) => {
      try {
        await locks.unlock(await locks.getLock(`${instance}/burst-${index}`, { expires: 30 }));
      } catch (error) {
        failures.push((error as Error).message);
      }
    }),
  );
  report({ burst: calls, milliseconds: Math.round(performance.now() - startedAt), failures });
}

async function main(settings: InstanceWorkerSettings): Promise<void> {
  @Injectable()
  class AppWork {
    /** The app's queries, one at a time: a light app, as the connection budget assumes. */
    private queries: Promise<unknown> = Promise.resolve();

    constructor(private readonly dataSource: DataSource) {}

    private query(sql: string, parameters?: unknown[]): Promise<unknown> {
      const result = this.queries.then(() => this.dataSource.query(sql, parameters));
      this.queries = result.catch(() => undefined);
      return result;
    }

    /** The app's own work, which keeps one connection of its pool open. */
    @Interval(1000)
    async work() {
      await this.query('SELECT 1');
    }

    @Cron(settings.schedule)
    @WithLock('tick', { expires: 30 })
    async tick() {
      await this.query(`INSERT INTO ${settings.runsTable} (instance, clock, fencing_token) VALUES ($1, $2, $3)`, [
        settings.instance,
        Date.now(),
        LockContext.current().fencingToken,
      ]);
    }
  }

  const app = await createWorkerApp(settings, { lockOptions: { lockedBy: settings.instance, ...settings.lockOptions }, metadata: { imports: [ScheduleModule.forRoot()], providers: [AppWork] } });
  app.enableShutdownHooks();
  const locks = app.get(LockService);
  const held = new Map<string, { lock: LockEntity; waiter: Promise<LockEntity> }>();
  createInterface({ input: process.stdin }).on('line', async (line) => {
    const command = JSON.parse(line) as InstanceCommand;
    if ('burst' in command) return burst(locks, settings.instance, command.burst, command.at);
    if ('wait' in command) {
      const lock = await locks.getLock(command.wait, { expires: 60 });
      const waiter = locks.getLock(command.wait, { wait: 60, expires: 60 });
      waiter.catch(() => undefined);
      held.set(command.wait, { lock, waiter });
      return report({ waiting: command.wait });
    }
    const { lock, waiter } = held.get(command.endWait)!;
    held.delete(command.endWait);
    try {
      await locks.unlock(lock);
      await locks.unlock(await waiter);
      report({ waitEnded: command.endWait });
    } catch (error) {
      report({ waitEnded: command.endWait, error: (error as Error).message });
    }
  });
  console.log(`ready ${Date.now()}`);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
