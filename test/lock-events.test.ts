import { INestApplication, Injectable } from '@nestjs/common';
import { Cron, Interval, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  LOCKMGR_CHANNELS,
  LockAcquiredMessage,
  LockedError,
  LockEventMessages,
  LockLostError,
  LockLostMessage,
  LockReleasedMessage,
  LockRenewedMessage,
  LockService,
  LockSkippedMessage,
  WithLock,
} from '../lib';
import { createLockApp, dropLockTable, LockApp, lockTestingModule, sleep, until, useLockApp } from './support/lock-app';
import { RecordingLogger } from './support/recording-logger';
import { ScriptProcess } from './support/processes';
import { describeEachDatabase, describeOnDatabase, testDatabase, uniqueName } from './support/test-databases';
import type { ThrowingSubscriberEvent, ThrowingSubscriberSettings } from './workers/throwing-subscriber-worker';

type LockEvent = { [Event in keyof LockEventMessages]: { event: Event; message: LockEventMessages[Event] } }[keyof LockEventMessages];

/** Every lock event published in this process on one lock table, in order, as a subscriber sees them. */
class EventLog {
  readonly events: LockEvent[] = [];
  private readonly unsubscribers: Array<() => void>;

  constructor(table: string) {
    this.unsubscribers = Object.entries(LOCKMGR_CHANNELS).map(([event, channelName]) => {
      const onMessage = (message: unknown) => {
        if ((message as { table: string }).table === table) this.events.push({ event, message } as LockEvent);
      };
      subscribe(channelName, onMessage);
      return () => unsubscribe(channelName, onMessage);
    });
  }

  /** The events of one lock, in order. */
  of(name: string): LockEvent[] {
    return this.events.filter((entry) => entry.message.name === name);
  }

  /** The names of the events of one lock, in order. */
  kinds(name: string): string[] {
    return this.of(name).map((entry) => entry.event);
  }

  /** The messages of one kind of event of one lock, in order. */
  messages<Event extends keyof LockEventMessages>(name: string, event: Event): LockEventMessages[Event][] {
    return this.of(name).flatMap((entry) => (entry.event === event ? [entry.message as LockEventMessages[Event]] : []));
  }

  close(): void {
    for (const unsubscribeFromChannel of this.unsubscribers) unsubscribeFromChannel();
  }
}

describeEachDatabase('Lock events', (database) => {
  const isolation = uniqueName('events');
  let app: LockApp;
  let log: EventLog;
  let name: string;
  let counter = 0;

  useLockApp(database, isolation, (started) => (app = started));
  beforeEach(() => {
    name = `events-${++counter}`;
    log = new EventLog(isolation);
  });
  afterEach(() => log.close());

  it('getLock, renewLock and unlock publish acquired, renewed and released, in order', async () => {
    const lock = await app.locks.getLock(name, { expires: 30 });
    const renewed = await app.locks.renewLock(lock, { expires: 60 });
    await sleep(200);
    expect(await app.locks.unlock(renewed)).toBe(true);

    expect(log.kinds(name)).toEqual(['acquired', 'renewed', 'released']);
    const [acquired] = log.messages(name, 'acquired');
    expect(acquired).toEqual<LockAcquiredMessage>({
      table: isolation,
      name,
      fencingToken: lock.fencingToken,
      lockedBy: lock.lockedBy,
      lockedUntil: lock.lockedUntil,
      expiresIn: expect.closeTo(30, 1),
      waited: expect.any(Number),
    });
    expect(acquired.waited).toBeGreaterThanOrEqual(0);
    expect(acquired.waited).toBeLessThan(5);
    expect(log.messages(name, 'renewed')).toEqual<LockRenewedMessage[]>([
      { table: isolation, name, fencingToken: lock.fencingToken, lockedUntil: renewed.lockedUntil, expiresIn: expect.closeTo(60, 1) },
    ]);
    const [released] = log.messages(name, 'released');
    expect(released).toEqual<LockReleasedMessage>({
      table: isolation,
      name,
      fencingToken: lock.fencingToken,
      held: expect.any(Number),
      forced: false,
      keptUntil: null,
    });
    // Held from the acquisition, across the renewal that gave a new handle, to the release.
    expect(released.held).toBeGreaterThanOrEqual(0.2);
  });

  it('says how long an acquisition waited, and that a release by name was forced', async () => {
    const holder = await createLockApp(database, isolation);
    try {
      await holder.locks.getLock(name, { expires: 30 });
      const releasing = sleep(300).then(() => holder.locks.unlock(name));
      const lock = await app.locks.getLock(name, { wait: 10 });
      expect(await releasing).toBe(true);
      expect(await app.locks.unlock(name)).toBe(true);

      // The holder's release and the waiter's acquisition are published by two instances, each after its
      // own round trip, so which of the two a subscriber sees first is not fixed.
      const kinds = log.kinds(name);
      expect([kinds[0], kinds[3]]).toEqual(['acquired', 'released']);
      expect(kinds.slice(1, 3).sort()).toEqual(['acquired', 'released']);
      const [, waited] = log.messages(name, 'acquired');
      expect(waited).toMatchObject({ name, fencingToken: lock.fencingToken });
      expect(waited.waited).toBeGreaterThanOrEqual(0.25);
      expect(log.messages(name, 'released')).toEqual([
        { table: isolation, name, fencingToken: null, held: null, forced: true, keptUntil: null },
        { table: isolation, name, fencingToken: null, held: null, forced: true, keptUntil: null },
      ]);
    } finally {
      await holder.close();
    }
  });

  it('publishes nothing for a release that released nothing, and for a lock held elsewhere', async () => {
    const lock = await app.locks.getLock(name);
    expect(await app.locks.tryLock(name)).toBeNull();
    await expect(app.locks.getLock(name)).rejects.toBeInstanceOf(LockedError);
    expect(await app.locks.unlock(lock)).toBe(true);
    expect(await app.locks.unlock(lock)).toBe(false);
    expect(await app.locks.unlock(name)).toBe(false);
    expect(log.kinds(name)).toEqual(['acquired', 'released']);
  });

  it('publishes a manager’s automatic renewals between its acquisition and its release', async () => {
    const manager = await app.locks.manager(name, { expires: 0.6 });
    await until(() => log.messages(name, 'renewed').length >= 2);
    await manager.release();

    const kinds = log.kinds(name);
    expect(kinds[0]).toBe('acquired');
    expect(kinds.at(-1)).toBe('released');
    expect(new Set(kinds.slice(1, -1))).toEqual(new Set(['renewed']));
    const renewals = log.messages(name, 'renewed');
    for (const renewal of renewals) {
      expect(renewal).toEqual({ table: isolation, name, fencingToken: manager.fencingToken, lockedUntil: expect.any(Date), expiresIn: expect.closeTo(0.6, 1) });
    }
    // Each renewal moved the lease on.
    const until_ = renewals.map((renewal) => renewal.lockedUntil!.getTime());
    expect(until_).toEqual([...until_].sort((a, b) => a - b));
    expect(new Set(until_).size).toBe(until_.length);
    const [released] = log.messages(name, 'released');
    expect(released).toMatchObject({ fencingToken: manager.fencingToken, forced: false, keptUntil: null });
    expect(released.held).toBeGreaterThanOrEqual(0.4);
  });

  it('says until when minHold keeps the lock of withLock work that is over', async () => {
    expect(await app.locks.withLock(name, () => 'done', { minHold: 2 })).toBe('done');
    const [kept] = (await app.locks.listLocks()).filter((lock) => lock.name === name);
    expect(log.kinds(name)).toEqual(['acquired', 'released']);
    expect(log.messages(name, 'released')).toEqual([
      { table: isolation, name, fencingToken: kept.fencingToken, held: expect.any(Number), forced: false, keptUntil: kept.lockedUntil },
    ]);
  });

  it('publishes lost, with the error its signal aborts with, when a manager’s lock is released by name', async () => {
    const manager = await app.locks.manager(name, { expires: 1.5 });
    expect(await app.locks.unlock(name)).toBe(true);
    await until(() => manager.signal.aborted);
    await manager.release();

    // Automatic renewals may come before the forced release on a slow machine; nothing comes after the loss.
    expect(log.kinds(name).filter((kind) => kind !== 'renewed')).toEqual(['acquired', 'released', 'lost']);
    expect(log.kinds(name).at(-1)).toBe('lost');
    expect(log.messages(name, 'released')).toEqual([expect.objectContaining({ forced: true, fencingToken: null })]);
    const [lost] = log.messages(name, 'lost');
    expect(lost).toEqual<LockLostMessage>({
      table: isolation,
      name,
      fencingToken: manager.fencingToken,
      held: expect.any(Number),
      error: manager.signal.reason,
    });
    expect(lost.error).toBeInstanceOf(LockLostError);
    expect(lost.error.message).toBe(`Lock "${name}" was lost: its lease ran out, or someone force-released it.`);
    expect(lost.held).toBeGreaterThan(0);
  });

  it('publishes acquired for the names setLock creates, and renewed for those it renews', async () => {
    await app.locks.getLock(`${name}-held`, { expires: 30 });
    const result = await app.locks.setLock([`${name}-held`, `${name}-free`], { timeout: 60 });
    expect(log.kinds(`${name}-held`)).toEqual(['acquired', 'renewed']);
    expect(log.kinds(`${name}-free`)).toEqual(['acquired']);
    const created = result.locks.find((lock) => lock.name === `${name}-free`)!;
    expect(log.messages(`${name}-free`, 'acquired')).toEqual([
      expect.objectContaining({ fencingToken: created.fencingToken, lockedUntil: created.lockedUntil, expiresIn: expect.closeTo(60, 1) }),
    ]);
    await app.locks.unlock(created);
    expect(log.messages(`${name}-free`, 'released')).toEqual([expect.objectContaining({ forced: false, held: expect.any(Number) })]);
  });

  it('reach a subscriber only while it is subscribed, and locks work the same either way', async () => {
    log.close();
    const acquiredChannel = channel(LOCKMGR_CHANNELS.acquired);
    expect(acquiredChannel.hasSubscribers).toBe(false);
    const seen: string[] = [];
    const onAcquired = (message: unknown) => seen.push((message as LockAcquiredMessage).name);
    subscribe(LOCKMGR_CHANNELS.acquired, onAcquired);
    try {
      expect(acquiredChannel.hasSubscribers).toBe(true);
      await app.locks.unlock(await app.locks.getLock(`${name}-heard`));
    } finally {
      expect(unsubscribe(LOCKMGR_CHANNELS.acquired, onAcquired)).toBe(true);
    }
    expect(acquiredChannel.hasSubscribers).toBe(false);
    const lock = await app.locks.getLock(`${name}-unheard`, { expires: 30 });
    const renewed = await app.locks.renewLock(lock, { expires: 60 });
    expect(renewed.fencingToken).toBe(lock.fencingToken);
    expect(await app.locks.withLock(`${name}-unheard-too`, (manager) => manager.fencingToken)).toBeGreaterThan(lock.fencingToken);
    expect(await app.locks.unlock(renewed)).toBe(true);
    expect(seen).toEqual([`${name}-heard`]);
  });
});

const CRON_LOCK = 'nightly-report';
const INTERVAL_LOCK = 'every-100-ms';

@Injectable()
class ScheduledJobs {
  /** Runs of the cron job; the interval, which runs all the time, does not count. */
  nightlyRuns = 0;

  @Cron('0 0 3 * * *', { name: 'nightly-report' })
  @WithLock(CRON_LOCK)
  async nightly() {
    this.nightlyRuns++;
  }

  @WithLock(INTERVAL_LOCK, { wait: 0.2 })
  @Interval(100)
  async often() {}
}

describeEachDatabase('Lock events of scheduled @WithLock runs', (database) => {
  const isolation = uniqueName('events_skipped');
  let app: INestApplication;
  let locks: LockService;
  let log: EventLog;

  beforeAll(async () => {
    log = new EventLog(isolation);
    const moduleRef = await lockTestingModule(database, isolation, {}, { imports: [ScheduleModule.forRoot()], providers: [ScheduledJobs] }).compile();
    app = moduleRef.createNestApplication({ logger: new RecordingLogger() });
    await app.init();
    locks = app.get(LockService);
  });
  afterAll(async () => {
    log?.close();
    await app?.close();
    await dropLockTable(database, isolation);
  });

  it('publish skipped, naming the method and the holder, for a @Cron tick that found its lock held', async () => {
    const held = await locks.getLock(CRON_LOCK, { expires: 30, lockedBy: 'another-instance' });
    try {
      const runs = app.get(ScheduledJobs).nightlyRuns;
      await app.get(SchedulerRegistry).getCronJob('nightly-report').fireOnTick();
      await until(() => log.messages(CRON_LOCK, 'skipped').length === 1);
      const [skipped] = log.messages(CRON_LOCK, 'skipped');
      expect(skipped).toEqual<LockSkippedMessage>({
        table: isolation,
        name: CRON_LOCK,
        method: 'ScheduledJobs.nightly',
        waited: expect.any(Number),
        error: expect.any(LockedError),
      });
      expect(skipped.error).toMatchObject({ lockName: CRON_LOCK, lockedBy: 'another-instance', lockedUntil: held.lockedUntil });
      expect(app.get(ScheduledJobs).nightlyRuns).toBe(runs);
    } finally {
      await locks.unlock(held);
    }
    await app.get(SchedulerRegistry).getCronJob('nightly-report').fireOnTick();
    await until(() => log.kinds(CRON_LOCK).length === 5);
    expect(log.kinds(CRON_LOCK)).toEqual(['acquired', 'skipped', 'released', 'acquired', 'released']);
  });

  it('publish skipped for each @Interval run that waited in vain, and acquired again once the lock is free', async () => {
    await until(() => log.kinds(INTERVAL_LOCK).includes('released'));
    // The runs hold the lock for moments: wait for one of those to end.
    const held = await locks.getLock(INTERVAL_LOCK, { expires: 30, wait: 5 });
    const from = log.of(INTERVAL_LOCK).length;
    try {
      await until(() => log.of(INTERVAL_LOCK).slice(from).filter((entry) => entry.event === 'skipped').length >= 2);
    } finally {
      await locks.unlock(held);
    }
    const skipped = log.messages(INTERVAL_LOCK, 'skipped');
    for (const message of skipped) {
      expect(message).toMatchObject({ name: INTERVAL_LOCK, method: 'ScheduledJobs.often' });
      // Each run waited its `wait` of 0.2 s before giving up.
      expect(message.waited).toBeGreaterThanOrEqual(0.2);
    }
    const acquiredBefore = log.messages(INTERVAL_LOCK, 'acquired').length;
    await until(() => log.messages(INTERVAL_LOCK, 'acquired').length > acquiredBefore + 1);
  });
});

for (const kind of ['postgres', 'mysql'] as const) {
  describeOnDatabase(testDatabase(kind), 'A lock event subscriber that throws', (database) => {
    const isolation = uniqueName('throwing_subscriber');
    let app: LockApp;

    useLockApp(database, isolation, (started) => (app = started));

    it('leaves the operation under way whole, then ends the process: the lock it held stays taken until its lease ends', async () => {
      const settings: ThrowingSubscriberSettings = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation, lockName: 'subscribed' };
      const worker = new ScriptProcess('workers/throwing-subscriber-worker.ts', [JSON.stringify(settings)]);
      const acquired = await worker.nextEvent<Extract<ThrowingSubscriberEvent, { event: 'acquired' }>>();
      const { code, stdout, stderr } = await worker.finished;

      expect(acquired).toEqual({ event: 'acquired', fencingToken: expect.any(Number) });
      expect(code).toBe(1);
      expect(stderr).toContain('Error: The lock event subscriber failed');
      // The release that came next never ran: nothing runs after the uncaught exception.
      expect(stdout).not.toContain('released');
      const [held] = (await app.locks.listLocks()).filter((lock) => lock.name === 'subscribed');
      expect(held).toMatchObject({ fencingToken: acquired.fencingToken, expired: false });
    });
  });
}
