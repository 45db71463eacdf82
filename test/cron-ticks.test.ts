import { Injectable } from '@nestjs/common';
import { Cron } from '@nestjs/schedule';
import { Test, TestingModule } from '@nestjs/testing';
import { LockContext, LockDatabaseError, LockService, WithLock } from '../lib';
import { LOCK_DIALECT } from '../lib/lockmgr.constants';
import { LockMgrTestingModule, ManualLockClock, MemoryLockStore } from '../lib/testing';
import { MemoryDialect } from '../lib/testing/memory.dialect';
import { FaultyDialect } from './support/faulty-dialect';
import { CronSchedule } from '../lib/with-lock/cron-schedule';
import { deferred, dropLockTable, lockTestingModule, until } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

const at = (iso: string) => new Date(iso).getTime();
const iso = (time: number) => new Date(time).toISOString();

/** The tick a call at `time` belongs to, as fire times. */
function tickOf(schedule: CronSchedule, time: string) {
  const tick = schedule.tickAt(at(time));
  return { at: iso(tick.at), next: iso(tick.next) };
}

describe('The tick of a @Cron call: the latest fire time at or before it, by the caller\'s clock', () => {
  const everyFive = CronSchedule.parse('*/5 * * * * *', 'UTC');

  it('is the fire time itself for a timer that fires on time, or a few milliseconds early', () => {
    expect(tickOf(everyFive, '2026-11-30T06:00:05.000Z')).toEqual({ at: '2026-11-30T06:00:05.000Z', next: '2026-11-30T06:00:10.000Z' });
    expect(tickOf(everyFive, '2026-11-30T06:00:04.996Z').at).toBe('2026-11-30T06:00:05.000Z');
    expect(tickOf(everyFive, '2026-11-30T06:00:05.012Z').at).toBe('2026-11-30T06:00:05.000Z');
  });

  it('stays the tick that was due for a timer late by almost a period, and moves on once the next one is due', () => {
    expect(tickOf(everyFive, '2026-11-30T06:00:07.000Z').at).toBe('2026-11-30T06:00:05.000Z');
    expect(tickOf(everyFive, '2026-11-30T06:00:09.900Z').at).toBe('2026-11-30T06:00:05.000Z');
    expect(tickOf(everyFive, '2026-11-30T06:00:10.000Z').at).toBe('2026-11-30T06:00:10.000Z');
    // Going back in time (another call, or a clock set back) finds the earlier tick again.
    expect(tickOf(everyFive, '2026-11-30T05:59:59.000Z').at).toBe('2026-11-30T05:59:55.000Z');
  });

  it('follows an irregular schedule, over the night and in its time zone', () => {
    const twiceADay = CronSchedule.parse('0 0 9,17 * * *', 'Europe/Paris'); // UTC+1 in winter
    expect(tickOf(twiceADay, '2026-11-30T16:59:00.000Z')).toEqual({ at: '2026-11-30T16:00:00.000Z', next: '2026-12-01T08:00:00.000Z' });
    expect(tickOf(twiceADay, '2026-12-01T07:59:59.000Z')).toEqual({ at: '2026-11-30T16:00:00.000Z', next: '2026-12-01T08:00:00.000Z' });
    expect(tickOf(twiceADay, '2026-12-01T08:00:00.000Z')).toEqual({ at: '2026-12-01T08:00:00.000Z', next: '2026-12-01T16:00:00.000Z' });
    // Summer time: the same hours are an hour earlier in UTC.
    expect(tickOf(twiceADay, '2026-07-01T12:00:00.000Z')).toEqual({ at: '2026-07-01T07:00:00.000Z', next: '2026-07-01T15:00:00.000Z' });
  });

  it('reads a UTC offset in minutes, as @Cron takes it', () => {
    const daily = CronSchedule.parse('0 30 2 * * *', undefined, 330); // 02:30 at UTC+05:30 is 21:00 UTC
    expect(tickOf(daily, '2026-11-30T20:59:00.000Z')).toEqual({ at: '2026-11-29T21:00:00.000Z', next: '2026-11-30T21:00:00.000Z' });
    const behindUtc = CronSchedule.parse('0 0 0 * * *', undefined, -90); // midnight at UTC-01:30 is 01:30 UTC
    expect(tickOf(behindUtc, '2026-11-30T01:29:00.000Z').at).toBe('2026-11-29T01:30:00.000Z');
  });

  it('finds the last fire time of a yearly schedule, months back', () => {
    const yearly = CronSchedule.parse('0 0 0 1 1 *', 'UTC');
    expect(tickOf(yearly, '2026-11-30T06:00:00.000Z')).toEqual({ at: '2026-01-01T00:00:00.000Z', next: '2027-01-01T00:00:00.000Z' });
  });

  it('is read from the @Cron options on the method, and only for a cron expression', () => {
    class Jobs {
      @Cron('0 0 9,17 * * *', { timeZone: 'Asia/Tokyo' })
      cron() {}
      @Cron(new Date('2030-01-01T00:00:00Z'))
      once() {}
      plain() {}
    }
    const schedule = CronSchedule.of(Jobs.prototype.cron)!;
    expect(tickOf(schedule, '2026-11-30T06:00:00.000Z').at).toBe('2026-11-30T00:00:00.000Z'); // 09:00 in Tokyo
    expect(CronSchedule.of(Jobs.prototype.once)).toBeUndefined();
    expect(CronSchedule.of(Jobs.prototype.plain)).toBeUndefined();
  });
});

/** Fire times of the schedule below are every 5 seconds; the tests pick one far from the others' ticks. */
const SCHEDULE = '*/5 * * * * *';

@Injectable()
class ReportJob {
  readonly tokens: number[] = [];
  /** Holds a run in the middle of its work while set. */
  gate?: Promise<void>;

  @Cron(SCHEDULE, { disabled: true })
  @WithLock('reports', { expires: 30 })
  async report(): Promise<void> {
    this.tokens.push(LockContext.current().fencingToken);
    await this.gate;
  }

  @WithLock('reports-throw', { expires: 30, onLocked: 'throw' })
  @Cron(SCHEDULE, { disabled: true })
  async reportOrThrow(): Promise<void> {
    this.tokens.push(LockContext.current().fencingToken);
  }

  @Cron(SCHEDULE, { disabled: true })
  @WithLock('reports-hold', { expires: 30, minHold: 60 })
  async reportAndHold(): Promise<void> {
    this.tokens.push(LockContext.current().fencingToken);
  }
}

/** Calls a method as if the instance's clock read `time` when its timer fired. */
function calledAt<T>(time: number, call: () => Promise<T>): Promise<T> {
  const clock = jest.spyOn(Date, 'now').mockReturnValue(time);
  try {
    return call();
  } finally {
    clock.mockRestore();
  }
}

describeEachDatabase('@WithLock on a @Cron method, with no minHold', (database) => {
  const isolation = uniqueName('cron_ticks');
  let instances: TestingModule[];
  let jobs: ReportJob[];
  const ranTokens = () => jobs.flatMap((job) => job.tokens);

  beforeAll(async () => {
    instances = [];
    for (const lockedBy of ['instance-a', 'instance-b']) {
      const moduleRef = await lockTestingModule(database, isolation, { lockedBy }, { providers: [ReportJob] }).compile();
      instances.push(await moduleRef.init());
    }
    jobs = instances.map((instance) => instance.get(ReportJob));
  });
  beforeEach(() => jobs.forEach((job) => job.tokens.splice(0)));
  afterAll(async () => {
    for (const instance of instances ?? []) await instance.close();
    await dropLockTable(database, isolation);
  });

  it('runs a tick once: an instance 2 s late, or early by milliseconds, skips it; the next tick is free once due', async () => {
    const [a, b] = jobs;
    const tick = at('2026-11-30T06:00:05Z');
    await calledAt(tick + 8, () => a.report());
    expect(a.tokens).toHaveLength(1);

    // The job took milliseconds, so its lock is long free: only the tick's record stops these.
    await expect(calledAt(tick + 2000, () => b.report())).resolves.toBeUndefined();
    await expect(calledAt(tick - 3, () => b.report())).resolves.toBeUndefined();
    await expect(calledAt(tick + 4900, () => a.report())).resolves.toBeUndefined();
    expect(ranTokens()).toHaveLength(1);

    await calledAt(tick + 5001, () => b.report());
    await expect(calledAt(tick + 7000, () => a.report())).resolves.toBeUndefined();
    // An instance whose clock is a period behind asks for an earlier tick, which ran too.
    await expect(calledAt(tick + 10, () => b.report())).resolves.toBeUndefined();
    expect(b.tokens).toHaveLength(1);
    expect(b.tokens[0]).toBeGreaterThan(a.tokens[0]);
  });

  it('says which tick was taken, and by whom, to a caller that asked for a LockedError', async () => {
    const [a, b] = jobs;
    const tick = at('2026-11-30T06:10:00Z');
    await calledAt(tick + 2, () => a.reportOrThrow());
    await expect(calledAt(tick + 2000, () => b.reportOrThrow())).rejects.toMatchObject({
      name: 'LockedError',
      lockName: 'reports-throw',
      lockedBy: 'instance-a',
      message: 'Tick 2026-11-30T06:10:00Z of lock "reports-throw" was already taken by instance-a.',
    });
  });

  it('never overlaps runs: a tick that comes while a run holds the lock is skipped, and stays free for a later call', async () => {
    const [a, b] = jobs;
    const tick = at('2026-11-30T06:20:00Z');
    const gate = deferred();
    a.gate = gate.promise;
    const longRun = calledAt(tick + 5, () => a.report());
    try {
      await until(() => a.tokens.length === 1);
      // The next tick comes while the run of this one is still going.
      await expect(calledAt(tick + 5003, () => b.report())).resolves.toBeUndefined();
      expect(b.tokens).toEqual([]);
    } finally {
      a.gate = undefined;
      gate.resolve();
      await longRun;
    }
    // Nobody ran that tick, so an instance late for it may still run it, once.
    await calledAt(tick + 7000, () => b.report());
    await expect(calledAt(tick + 7500, () => a.report())).resolves.toBeUndefined();
    expect(b.tokens).toHaveLength(1);
  });

  it('still keeps the lock minHold seconds after a run when given', async () => {
    const [a] = jobs;
    await calledAt(at('2026-11-30T06:30:00Z') + 1, () => a.reportAndHold());
    expect(a.tokens).toHaveLength(1);
    expect(await instances[1].get(LockService).isLocked('reports-hold')).toBe(true);
  });

  it('keeps each tick as a lock named after it, for three periods', async () => {
    const records = (await instances[0].get(LockService).listLocks()).filter((lock) => lock.name === 'reports@2026-11-30T06:00:05Z');
    expect(records).toEqual([expect.objectContaining({ lockedBy: 'instance-a' })]);
    expect(records[0].expiresSeconds).toBeGreaterThan(0);
    expect(records[0].expiresSeconds).toBeLessThanOrEqual(15);
  });
});

describe('A @Cron call whose database fails after it took its tick', () => {
  it('rejects, and leaves the tick to the next instance that comes for it', async () => {
    const store = new MemoryLockStore(new ManualLockClock(new Date('2026-11-30T06:00:01Z')));
    const faulty = new FaultyDialect(new MemoryDialect(store));
    const failing = await Test.createTestingModule({ imports: [LockMgrTestingModule.forRoot({ store })], providers: [ReportJob] })
      .overrideProvider(LOCK_DIALECT)
      .useValue(faulty)
      .compile();
    const healthy = await Test.createTestingModule({ imports: [LockMgrTestingModule.forRoot({ store })], providers: [ReportJob] }).compile();
    await Promise.all([failing.init(), healthy.init()]);
    try {
      // Call 0 takes the tick's record; call 1, the lock itself, never reaches the database.
      faulty.arm(new Map([[1, { kind: 'fail-before', error: 'connection reset' }]]));
      await expect(failing.get(ReportJob).report()).rejects.toBeInstanceOf(LockDatabaseError);
      expect(failing.get(ReportJob).tokens).toEqual([]);
      await healthy.get(ReportJob).report();
      expect(healthy.get(ReportJob).tokens).toHaveLength(1);
    } finally {
      await Promise.all([failing.close(), healthy.close()]);
    }
  });
});
