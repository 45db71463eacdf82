import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { LockService } from './lock.service';
import { LOCKMGR_DATA_SOURCE_NAME, LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import { loadOptionalDependency } from './optional-dependency';

/** The part of the interval by which each run is put off at random: runs are ½ to 1½ intervals apart. */
const JITTER = 0.5;

/**
 * Deletes the rows of expired locks once every `cleanupInterval` seconds, as an interval of the app's
 * `SchedulerRegistry` named `lockmgr-cleanup:<data source>:<table>` (`lockmgr-cleanup:default:lockmgr_lock`
 * by default). Each run starts at a random moment of the first half of its interval, so instances
 * started together do not all delete at once; a row is deleted at most 1½ `cleanupInterval` after it
 * expired (plus the time the deletion takes). It needs the app to import `ScheduleModule.forRoot()`;
 * without it there is no clean-up task, which only leaves expired rows in the table: they count as free
 * either way. A name already in the registry stops start-up with an error saying so.
 */
@Injectable()
export class LockCleanupService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('LockCleanup');
  private scheduled?: { registry: SchedulerRegistry; name: string };
  /** The run the current interval put off by its jitter. */
  private delayed?: NodeJS.Timeout;
  private cleaning?: Promise<void>;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly locks: LockService,
    @Inject(LOCKMGR_OPTIONS) private readonly options: ResolvedLockMgrOptions,
    @Inject(LOCKMGR_DATA_SOURCE_NAME) private readonly dataSourceName: string,
  ) {}

  onApplicationBootstrap(): void {
    if (this.options.cleanupInterval === 0) return;
    const registry = this.findSchedulerRegistry();
    if (!registry) {
      this.logger.debug(
        'No clean-up task without ScheduleModule.forRoot() from @nestjs/schedule in the app: expired locks stay in the table (they count as free anyway).',
      );
      return;
    }
    const name = `lockmgr-cleanup:${this.dataSourceName}:${this.options.tableName}`;
    // Checked before the timer exists, so a refused start-up leaves no timer running.
    if (registry.doesExist('interval', name)) {
      throw new Error(
        `The clean-up task "${name}" is already in the app's SchedulerRegistry: ` +
          'the app has an interval of that name, or two lock modules on data sources of the same name use the same table.',
      );
    }
    const timer = setInterval(() => this.runAfterJitter(), this.options.cleanupInterval * 1000);
    // Expired rows count as free anyway: deleting them is never a reason to keep the process alive.
    timer.unref();
    registry.addInterval(name, timer);
    this.scheduled = { registry, name };
  }

  /** Stops the task before the locks are released and the connections closed, and lets a clean-up in progress finish. */
  async onModuleDestroy(): Promise<void> {
    const scheduled = this.scheduled;
    this.scheduled = undefined;
    if (scheduled?.registry.doesExist('interval', scheduled.name)) scheduled.registry.deleteInterval(scheduled.name);
    clearTimeout(this.delayed);
    this.delayed = undefined;
    await this.cleaning;
  }

  private runAfterJitter(): void {
    if (this.delayed) return;
    this.delayed = setTimeout(() => {
      this.delayed = undefined;
      this.clean();
    }, Math.random() * JITTER * this.options.cleanupInterval * 1000);
    this.delayed.unref();
  }

  private clean(): void {
    // A clean-up slower than the interval is not stacked with the next one.
    if (this.cleaning) return;
    this.cleaning = this.locks
      .cleanLocks()
      .then(
        (deleted) => {
          if (deleted > 0) this.logger.debug(`Deleted ${deleted} expired locks.`);
        },
        (error) => this.logger.error(`Deleting expired locks failed (the next try is in about ${this.options.cleanupInterval} s): ${error}`),
      )
      .finally(() => (this.cleaning = undefined));
  }

  /** @nestjs/schedule is an optional peer dependency: loaded only here, and only its registry in this app counts. */
  private findSchedulerRegistry(): SchedulerRegistry | undefined {
    const schedule = loadOptionalDependency<typeof import('@nestjs/schedule')>('@nestjs/schedule');
    if (!schedule) return undefined;
    try {
      return this.moduleRef.get(schedule.SchedulerRegistry, { strict: false });
    } catch {
      return undefined;
    }
  }
}
