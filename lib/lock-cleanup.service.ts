import { Inject, Injectable, Logger, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { LockService } from './lock.service';
import { LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import { loadOptionalDependency } from './optional-dependency';

/**
 * Deletes the rows of expired locks every `cleanupInterval` seconds, as an interval of the app's
 * `SchedulerRegistry` (named `lockmgr-cleanup:<table>`). It needs the app to import
 * `ScheduleModule.forRoot()`; without it there is no clean-up task, which only leaves expired rows in
 * the table: they count as free either way.
 */
@Injectable()
export class LockCleanupService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('LockCleanup');
  private scheduled?: { registry: SchedulerRegistry; name: string };
  private cleaning?: Promise<void>;

  constructor(
    private readonly moduleRef: ModuleRef,
    private readonly locks: LockService,
    @Inject(LOCKMGR_OPTIONS) private readonly options: ResolvedLockMgrOptions,
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
    const name = `lockmgr-cleanup:${this.options.tableName}`;
    const timer = setInterval(() => this.clean(), this.options.cleanupInterval * 1000);
    registry.addInterval(name, timer);
    this.scheduled = { registry, name };
  }

  /** Stops the task before the locks are released and the connections closed, and lets a clean-up in progress finish. */
  async onModuleDestroy(): Promise<void> {
    const scheduled = this.scheduled;
    this.scheduled = undefined;
    if (scheduled?.registry.doesExist('interval', scheduled.name)) scheduled.registry.deleteInterval(scheduled.name);
    await this.cleaning;
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
        (error) => this.logger.error(`Deleting expired locks failed (the next try is in ${this.options.cleanupInterval} s): ${error}`),
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
