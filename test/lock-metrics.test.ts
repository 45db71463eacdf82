import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import type { DataSource } from 'typeorm';
import { LOCKMGR_CHANNELS, LockDatabaseError, LockService, WithLock } from '../lib';
import { openDialect } from '../lib/dialects/create-dialect';
import { ACQUISITION_ENDED_CHANNEL } from '../lib/lock-events';
import { LOCK_DIALECT, LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from '../lib/lockmgr.constants';
import type { ResolvedLockMgrOptions } from '../lib/lockmgr-options';
import { LockMgrTestingModule, ManualLockClock, MemoryLockStore } from '../lib/testing';
import { MetricPoint, useMeterProvider, valueOf } from './support/collected-metrics';
import { FaultyDialect } from './support/faulty-dialect';
import { createLockApp, dropLockTable, LockApp, lockTestingModule, until } from './support/lock-app';
import { describeOnDatabase, removeSqliteFile, testDatabase, uniqueName } from './support/test-databases';
import { runWithoutPackages } from './support/without-packages';

const meter = useMeterProvider();

/** What every point of the lock metrics must look like: the table, and for acquisitions the outcome; never a lock name. */
function expectOnlyBoundedAttributes(points: MetricPoint[], table: string): void {
  expect(points.length).toBeGreaterThan(0);
  for (const point of points) {
    const { outcome, ...rest } = point.attributes;
    expect(rest).toEqual({ 'lockmgr.table': table });
    if (point.metric === 'lockmgr.acquire.duration') expect(['acquired', 'locked', 'error']).toContain(outcome);
    else expect(outcome).toBeUndefined();
  }
}

for (const kind of ['postgres', 'sqlite'] as const) {
  describeOnDatabase(testDatabase(kind), 'Lock metrics', (database) => {
    const isolation = uniqueName('metrics');
    const table = { 'lockmgr.table': isolation };
    let locks: LockService;
    let dialect: FaultyDialect;
    let close: () => Promise<void>;

    beforeAll(async () => {
      const moduleRef = await lockTestingModule(database, isolation)
        .overrideProvider(LOCK_DIALECT)
        .useFactory({
          inject: [LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS],
          factory: async (dataSource: DataSource, options: ResolvedLockMgrOptions) =>
            (dialect = new FaultyDialect(await openDialect(dataSource, options))),
        })
        .compile();
      await moduleRef.init();
      locks = moduleRef.get(LockService);
      close = () => moduleRef.close();
    });
    afterAll(async () => {
      await close();
      await dropLockTable(database, isolation);
    });

    it('records each acquisition by outcome, each hold, and the locks held, under the table only', async () => {
      const before = await meter.collect(isolation);
      const lock = await locks.getLock('report', { expires: 60 });
      expect(await locks.tryLock('report')).toBeNull();
      dialect.arm(new Map([[0, { kind: 'fail-before', error: 'connection reset' }]]));
      await expect(locks.tryLock('unreachable')).rejects.toThrow(LockDatabaseError);
      const manager = await locks.manager('export');
      await manager.lock('export-part');
      const heldInside = await locks.withLock('import', async () => valueOf(await meter.collect(isolation), 'lockmgr.held', table));
      expect(heldInside).toBe(4);
      expect(valueOf(await meter.collect(isolation), 'lockmgr.held', table)).toBe(3);
      await locks.unlock(lock);
      await manager.release();

      const after = await meter.collect(isolation);
      const recorded = (metric: string, attributes: Record<string, string>) => valueOf(after, metric, attributes) - valueOf(before, metric, attributes);
      expect(recorded('lockmgr.acquire.duration', { ...table, outcome: 'acquired' })).toBe(4);
      expect(recorded('lockmgr.acquire.duration', { ...table, outcome: 'locked' })).toBe(1);
      expect(recorded('lockmgr.acquire.duration', { ...table, outcome: 'error' })).toBe(1);
      expect(recorded('lockmgr.hold.duration', table)).toBe(4);
      expect(valueOf(after, 'lockmgr.held', table)).toBe(0);
      expect(after.find((point) => point.metric === 'lockmgr.acquire.duration')?.unit).toBe('s');
      expect(after.find((point) => point.metric === 'lockmgr.held')?.unit).toBe('{lock}');
      expectOnlyBoundedAttributes(after, isolation);
    });

    it('counts a lost lock once, and force releases by name or setLock never make the held count drift', async () => {
      const before = await meter.collect(isolation);
      const manager = await locks.manager('lost', { expires: 1.5 });
      expect(await locks.unlock('lost')).toBe(true);
      await until(() => manager.signal.aborted);
      await manager.release();
      // Locks this app took with setLock count until released; a lock someone else holds never counts.
      await locks.setLock(['set-a', 'set-b'], { timeout: 60 });
      await dialect.acquire({ name: 'elsewhere', owner: randomUUID(), expires: 60, lockedBy: 'another-host', lockProcess: null });
      expect(valueOf(await meter.collect(isolation), 'lockmgr.held', table)).toBe(2);
      expect(await locks.unlock('elsewhere')).toBe(true);
      expect(await locks.unlock('set-a')).toBe(true);
      expect(valueOf(await meter.collect(isolation), 'lockmgr.held', table)).toBe(1);
      expect(await locks.unlock('set-b')).toBe(true);
      expect(await locks.unlock('set-b')).toBe(false);

      const after = await meter.collect(isolation);
      expect(valueOf(after, 'lockmgr.lost', table) - valueOf(before, 'lockmgr.lost', table)).toBe(1);
      expect(valueOf(after, 'lockmgr.held', table)).toBe(0);
      expect(valueOf(after, 'lockmgr.hold.duration', table) - valueOf(before, 'lockmgr.hold.duration', table)).toBe(3);
    });

    it('counts the managers that shutdown releases, in another app on the same table', async () => {
      const other: LockApp = await createLockApp(database, isolation);
      const before = await meter.collect(isolation);
      await other.locks.manager('left-open');
      expect(valueOf(await meter.collect(isolation), 'lockmgr.held', table)).toBe(1);
      await other.close();
      const after = await meter.collect(isolation);
      expect(valueOf(after, 'lockmgr.held', table)).toBe(0);
      expect(valueOf(after, 'lockmgr.hold.duration', table) - valueOf(before, 'lockmgr.hold.duration', table)).toBe(1);
    });

    it('records nothing for a module with telemetry: false', async () => {
      const quiet = uniqueName('metrics_off');
      const app = await createLockApp(database, quiet, { telemetry: false });
      try {
        await app.locks.withLock('job', async () => expect(await app.locks.tryLock('job')).toBeNull());
        expect(await meter.collect(quiet)).toEqual([]);
      } finally {
        await app.close();
        await dropLockTable(database, quiet);
      }
    });
  });
}

@Injectable()
class NightlyJob {
  runs = 0;

  @WithLock('nightly', { onLocked: 'skip' })
  async run(): Promise<void> {
    this.runs++;
  }
}

describe('Lock metrics on the in-memory store', () => {
  it('records skipped runs and counts locks held until their lease runs out by the store’s clock; stops listening at shutdown', async () => {
    const tableName = uniqueName('metrics_memory');
    const table = { 'lockmgr.table': tableName };
    const clock = new ManualLockClock();
    const store = new MemoryLockStore(clock);
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrTestingModule.forRoot({ store, tableName })],
      providers: [NightlyJob],
    }).compile();
    await moduleRef.init();
    const locks = moduleRef.get(LockService);
    const job = moduleRef.get(NightlyJob);
    try {
      const lock = await locks.getLock('nightly', { expires: 30 });
      await job.run();
      expect(job.runs).toBe(0);
      await locks.getLock('forgotten', { expires: 60 });
      let points = await meter.collect(tableName);
      expect(valueOf(points, 'lockmgr.skipped', table)).toBe(1);
      expect(valueOf(points, 'lockmgr.acquire.duration', { ...table, outcome: 'locked' })).toBe(1);
      expect(valueOf(points, 'lockmgr.held', table)).toBe(2);

      await locks.renewLock(lock, { expires: 120 });
      clock.advance(61);
      expect(valueOf(await meter.collect(tableName), 'lockmgr.held', table)).toBe(1);
      await locks.unlock(lock);
      await job.run();
      expect(job.runs).toBe(1);
      points = await meter.collect(tableName);
      expect(valueOf(points, 'lockmgr.held', table)).toBe(0);
      expect(valueOf(points, 'lockmgr.acquire.duration', { ...table, outcome: 'acquired' })).toBe(3);
      expect(valueOf(points, 'lockmgr.hold.duration', table)).toBe(2);
      expectOnlyBoundedAttributes(points, tableName);
    } finally {
      await moduleRef.close();
    }
    // The last module recording metrics is gone: nothing listens to the lock events any more.
    for (const name of [...Object.values(LOCKMGR_CHANNELS), ACQUISITION_ENDED_CHANNEL]) expect(channel(name).hasSubscribers).toBe(false);
  });
});

describe('An app without @opentelemetry/api installed', () => {
  const isolation = uniqueName('metrics_none');
  afterAll(() => removeSqliteFile(isolation));

  it('starts, takes locks and shuts down as before', async () => {
    const report = await runWithoutPackages(['@opentelemetry/api'], isolation);
    expect(report.packages).toEqual({ '@opentelemetry/api': { resolvable: false, loaded: false } });
    expect(report.withLock).toBe('ran');
    expect(report.fencingToken).toEqual(expect.any(Number));
  });

  it('is loaded at start-up when it is installed', async () => {
    const report = await runWithoutPackages([], isolation, ['@opentelemetry/api']);
    expect(report.packages).toEqual({ '@opentelemetry/api': { resolvable: true, loaded: true } });
    expect(report.withLock).toBe('ran');
  });
});
