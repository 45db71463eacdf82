import { BeforeApplicationShutdown, INestApplicationContext, Injectable } from '@nestjs/common';
import { ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { LockMgrModuleOptions, LockService } from '../lib';
import { LibraryTimers } from './support/library-timers';
import { dropLockTable, lockTestingModule, sleep, until } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { describeEachDatabase, describeOnDatabase, TestDatabase, testDatabase, uniqueName } from './support/test-databases';

/** More expired rows than one clean-up statement deletes (1000), so the task needs several. */
const EXPIRED = 2100;
const LEASE = 5;

/**
 * Reads the registry when the app starts shutting down: after every module was destroyed, and (as a
 * provider of the app's own module, not a global one) before @nestjs/schedule clears the registry.
 */
@Injectable()
class RegistryProbe implements BeforeApplicationShutdown {
  intervalsAtShutdown?: string[];
  constructor(private readonly registry: SchedulerRegistry) {}
  beforeApplicationShutdown() {
    this.intervalsAtShutdown = this.registry.getIntervals();
  }
}

interface CleanupApp {
  app: INestApplicationContext;
  locks: LockService;
  logger: RecordingLogger;
  rowNames(): Promise<string[]>;
}

async function startApp(database: TestDatabase, isolation: string, options: LockMgrModuleOptions, withSchedule: boolean): Promise<CleanupApp> {
  const moduleRef = await lockTestingModule(
    database,
    isolation,
    options,
    withSchedule ? { imports: [ScheduleModule.forRoot()], providers: [RegistryProbe] } : {},
  ).compile();
  const logger = new RecordingLogger();
  moduleRef.useLogger(logger);
  await moduleRef.init();
  const dataSource = moduleRef.get(DataSource);
  return {
    app: moduleRef,
    locks: moduleRef.get(LockService),
    logger,
    // Every row, expired or not: what the clean-up leaves behind.
    rowNames: async () =>
      (await dataSource.query(`SELECT name FROM ${dataSource.driver.escape(isolation)} ORDER BY name`)).map((row: { name: string }) => row.name),
  };
}

describeEachDatabase('The clean-up task', (database) => {
  const isolation = uniqueName('cleanup');
  const task = `lockmgr-cleanup:default:${isolation}`;

  afterAll(() => dropLockTable(database, isolation));

  it('runs every cleanupInterval seconds in the app’s SchedulerRegistry, deleting expired rows only', async () => {
    const { app, locks, rowNames } = await startApp(database, isolation, { cleanupInterval: 0.3 }, true);
    try {
      expect(app.get(SchedulerRegistry).getIntervals()).toContain(task);
      const expiring = Array.from({ length: EXPIRED }, (_, index) => `expired-${String(index).padStart(4, '0')}`);
      // A lease longer than taking 2100 locks lasts on a busy machine, so that they all exist when counted.
      await locks.setLock(expiring, { timeout: LEASE });
      await locks.getLock('live', { expires: 60 });
      await locks.getLock('never', { expires: 0 });
      expect(await rowNames()).toHaveLength(EXPIRED + 2);
      await until(async () => (await rowNames()).length === 2, 20_000);
      expect(await rowNames()).toEqual(['live', 'never']);
      expect(await locks.isLocked('live')).toBe(true);
      expect(await locks.isLocked('never')).toBe(true);
    } finally {
      await app.close();
    }
    expect(app.get(RegistryProbe).intervalsAtShutdown).toEqual([]);
  });

  it('logs a failed clean-up and keeps running', async () => {
    const failing = uniqueName('cleanup_failing');
    const { app, logger } = await startApp(database, failing, { cleanupInterval: 0.1 }, true);
    try {
      const dataSource = app.get(DataSource);
      await dataSource.query(`DROP TABLE ${dataSource.driver.escape(failing)}`);
      await until(() => logger.lines('error', 'LockCleanup').length >= 2, 10_000);
      expect(logger.lines('error', 'LockCleanup')[0]).toMatch(/^Deleting expired locks failed \(the next try is in about 0.1 s\): /);
      expect(app.get(SchedulerRegistry).getIntervals()).toContain(`lockmgr-cleanup:default:${failing}`);
    } finally {
      await app.close();
      await dropLockTable(database, failing);
    }
  });

  it('is not registered with cleanupInterval: 0', async () => {
    const { app } = await startApp(database, isolation, { cleanupInterval: 0 }, true);
    try {
      expect(app.get(SchedulerRegistry).getIntervals()).not.toContain(task);
    } finally {
      await app.close();
    }
  });

  it('does not exist without ScheduleModule: the app runs, and expired rows stay but count as free', async () => {
    const { app, locks, logger, rowNames } = await startApp(database, isolation, { cleanupInterval: 0.1 }, false);
    try {
      await locks.getLock('expired-without-schedule', { expires: 0.1 });
      await sleep(500);
      expect(await rowNames()).toContain('expired-without-schedule');
      expect(await locks.isLocked('expired-without-schedule')).toBe(false);
      expect(logger.lines('debug', 'LockCleanup')).toEqual([expect.stringMatching(/^No clean-up task without ScheduleModule/)]);
    } finally {
      await app.close();
    }
  });
});

describeOnDatabase(testDatabase('sqlite'), 'The clean-up task’s schedule', (database) => {
  const isolation = uniqueName('cleanup_schedule');

  afterAll(() => dropLockTable(database, isolation));

  it('starts each run at a random moment of its interval, never more than 1½ intervals after the last one', async () => {
    const interval = 1;
    const { app, locks } = await startApp(database, isolation, { cleanupInterval: interval }, true);
    const runs: number[] = [];
    const cleanLocks = locks.cleanLocks.bind(locks);
    jest.spyOn(locks, 'cleanLocks').mockImplementation(() => (runs.push(performance.now() / 1000), cleanLocks()));
    try {
      await until(() => runs.length >= 6, 20_000);
    } finally {
      await app.close();
    }
    const gaps = runs.slice(1, 6).map((run, index) => run - runs[index]);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThan(interval / 2 - 0.05);
      // The bound, with room for the timers of a busy machine.
      expect(gap).toBeLessThan(interval * 1.5 + 0.5);
    }
    // Runs at fixed moments would be one interval apart, give or take the timers' few milliseconds.
    expect(Math.max(...gaps) - Math.min(...gaps)).toBeGreaterThan(0.05);
  });

  it('stops start-up when its name is taken in the app’s SchedulerRegistry, saying so, and leaves no timer running', async () => {
    const name = `lockmgr-cleanup:default:${isolation}`;
    // An interval of the app's own, registered before the lock module starts.
    const appInterval = {
      provide: 'app interval',
      inject: [SchedulerRegistry],
      useFactory: (registry: SchedulerRegistry) => registry.addInterval(name, setInterval(() => undefined, 60_000).unref()),
    };
    const timers = new LibraryTimers().start();
    const moduleRef = await lockTestingModule(database, isolation, { cleanupInterval: 0.1 }, { imports: [ScheduleModule.forRoot()], providers: [appInterval] }).compile();
    try {
      await expect(moduleRef.init()).rejects.toThrow(
        `The clean-up task "${name}" is already in the app's SchedulerRegistry: the app has an interval of that name, or two lock modules on data sources of the same name use the same table.`,
      );
      // Nest cannot close an app whose start-up failed (close() rethrows the failure): nothing of it may keep running.
      expect(timers.stillPending).toEqual([]);
    } finally {
      timers.stop();
    }
  });
});
