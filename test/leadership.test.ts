import { Injectable } from '@nestjs/common';
import { Interval, ScheduleModule } from '@nestjs/schedule';
import { Test, TestingModule } from '@nestjs/testing';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { LeaderOnly, LOCKMGR_CHANNELS, LockDemotedMessage, LockElectedMessage, LockLostError, LockService, LockSkippedMessage } from '../lib';
import { LockMgrTestingModule, ManualLockClock, MemoryLockStore } from '../lib/testing';
import { createLockApp, dropLockTable, LockApp, sleep, until } from './support/lock-app';
import { describeEachDatabase, uniqueName } from './support/test-databases';

/** The elected, demoted and skipped events of one lock table, in order. */
function recordLeadershipEvents(table: string) {
  const events: Array<{ event: 'elected' | 'demoted' | 'skipped'; message: LockElectedMessage | LockDemotedMessage | LockSkippedMessage }> = [];
  const listeners = (['elected', 'demoted', 'skipped'] as const).map((event) => {
    const listener = (message: unknown) => {
      if ((message as { table: string }).table === table) events.push({ event, message: message as LockElectedMessage });
    };
    subscribe(LOCKMGR_CHANNELS[event], listener);
    return () => unsubscribe(LOCKMGR_CHANNELS[event], listener);
  });
  return { events, close: () => listeners.forEach((stop) => stop()) };
}

describeEachDatabase('LockService.lead', (database) => {
  const isolation = uniqueName('leader');
  let first: LockApp;
  let second: LockApp;
  let recorded: ReturnType<typeof recordLeadershipEvents>;

  beforeAll(async () => {
    first = await createLockApp(database, isolation);
    second = await createLockApp(database, isolation);
    recorded = recordLeadershipEvents(isolation);
  });
  afterAll(async () => {
    recorded.close();
    await first.close();
    await second.close();
    await dropLockTable(database, isolation);
  });

  it('elects one instance; a resign hands over at once, with a larger fencing token and a new signal', async () => {
    const one = first.locks.lead('indexer', { expires: 3 });
    await one.elected();
    const two = second.locks.lead('indexer', { expires: 3 });
    expect([one.isLeader, two.isLeader]).toEqual([true, false]);
    expect(two.fencingToken).toBeNull();
    expect(two.signal.aborted).toBe(true);
    const firstTerm = { token: one.fencingToken!, signal: one.signal };
    expect(firstTerm.signal.aborted).toBe(false);
    // The term outlives several renewals (every second).
    await sleep(1500);
    expect([one.isLeader, two.isLeader]).toEqual([true, false]);

    const resignedAt = performance.now();
    await one.resign();
    expect(one.isLeader).toBe(false);
    expect(firstTerm.signal.reason).toBeInstanceOf(LockLostError);
    await two.elected();
    const handOverMs = performance.now() - resignedAt;
    // Within milliseconds on PostgreSQL (NOTIFY); within the poll interval (1 s) elsewhere.
    expect(handOverMs).toBeLessThan(database.kind === 'postgres' ? 250 : 1250);
    expect(two.fencingToken!).toBeGreaterThan(firstTerm.token);
    expect(two.signal).not.toBe(firstTerm.signal);
    await expect(one.elected()).rejects.toThrow('This instance campaigns no more for the leadership of "indexer"');

    const messages = recorded.events.filter((entry) => entry.message.name === 'indexer');
    expect(messages.map(({ event, message }) => [event, (message as LockDemotedMessage).fencingToken, (message as LockDemotedMessage).reason])).toEqual([
      ['elected', firstTerm.token, undefined],
      ['demoted', firstTerm.token, 'resigned'],
      ['elected', two.fencingToken, undefined],
    ]);
    await two.resign();
  });

  it('gives one Leadership per name in an app, and refuses other options for a name it leads', async () => {
    const leadership = first.locks.lead('same', { expires: 5 });
    expect(first.locks.lead('same', { expires: 5 })).toBe(leadership);
    expect(() => first.locks.lead('same', { expires: 6 })).toThrow('already campaigns for "same" with expires 5');
    await leadership.resign();
    const next = first.locks.lead('same', { expires: 6 });
    expect(next).not.toBe(leadership);
    await next.elected();
    await next.resign();
  });

  it('stops waiting for election when the signal aborts, and keeps campaigning', async () => {
    const held = first.locks.lead('waited', { expires: 5 });
    await held.elected();
    const candidate = second.locks.lead('waited', { expires: 5 });
    await expect(candidate.elected({ signal: AbortSignal.timeout(100) })).rejects.toThrow(/timed out|aborted/i);
    await held.resign();
    await candidate.elected();
    await candidate.resign();
  });

  it('refuses bad arguments before any database call', () => {
    expect(() => first.locks.lead('', {})).toThrow('lead name must not be empty');
    expect(() => first.locks.lead('x', { expires: 0 })).toThrow("lead option expires must be a number of seconds: a leader's lease must end");
    expect(() => first.locks.lead('x', { expires: -1 })).toThrow(RangeError);
    expect(() => first.locks.lead('x', { wait: 1 } as never)).toThrow('lead options');
  });
});

describe('@LeaderOnly', () => {
  it('refuses bad arguments when it decorates', () => {
    expect(() => LeaderOnly('')).toThrow('@LeaderOnly name must not be empty');
    expect(() => LeaderOnly('x', { expires: null as never })).toThrow('@LeaderOnly option expires');
    expect(() => LeaderOnly('x', { expire: 3 } as never)).toThrow('@LeaderOnly options');
  });
});

/** A user's leader-only job, tested with the in-memory store. */
@Injectable()
class Indexer {
  runs = 0;

  @Interval(20)
  @LeaderOnly('indexer', { expires: 15 })
  tick(): number {
    return ++this.runs;
  }
}

describe('@LeaderOnly on the in-memory store', () => {
  async function instance(store: MemoryLockStore): Promise<TestingModule> {
    const moduleRef = await Test.createTestingModule({
      imports: [ScheduleModule.forRoot(), LockMgrTestingModule.forRoot({ store })],
      providers: [Indexer],
    }).compile();
    return moduleRef.init();
  }

  it('runs on the leader only; a lease that runs out by the store clock demotes it before its next call', async () => {
    const clock = new ManualLockClock();
    const store = new MemoryLockStore(clock);
    const recorded = recordLeadershipEvents('lockmgr_lock');
    const a = await instance(store);
    const b = await instance(store);
    try {
      await a.get(LockService).lead('indexer', { expires: 15 }).elected();
      const [onA, onB] = [a.get(Indexer), b.get(Indexer)];
      await until(() => onA.runs >= 3);
      expect(onB.runs).toBe(0);
      expect(onB.tick()).toBeUndefined();

      // The store's time jumps past the lease: the term ends at once, before any renewal could land.
      const leadershipA = a.get(LockService).lead('indexer', { expires: 15 });
      const firstToken = leadershipA.fencingToken!;
      clock.advance(16);
      expect(leadershipA.isLeader).toBe(false);
      expect(leadershipA.signal.aborted).toBe(true);
      const runsBefore = onA.runs;
      expect(onA.tick()).toBeUndefined();
      expect(onA.runs).toBe(runsBefore);
      const demoted = recorded.events.find((entry) => entry.event === 'demoted')!.message as LockDemotedMessage;
      expect(demoted).toMatchObject({ reason: 'lost', fencingToken: firstToken });
      expect(recorded.events.some((entry) => entry.event === 'skipped' && (entry.message as LockSkippedMessage).method === 'Indexer.tick')).toBe(true);

      // A new term (on either instance) has a larger token, and only its leader runs the job.
      const leaderships = [leadershipA, b.get(LockService).lead('indexer', { expires: 15 })];
      await until(() => leaderships.some((leadership) => leadership.isLeader));
      const leader = leaderships.findIndex((leadership) => leadership.isLeader);
      expect(leaderships[leader].fencingToken!).toBeGreaterThan(firstToken);
      const [leaderJob, otherJob] = leader === 0 ? [onA, onB] : [onB, onA];
      const [leaderRuns, otherRuns] = [leaderJob.runs, otherJob.runs];
      await until(() => leaderJob.runs >= leaderRuns + 3);
      expect(otherJob.runs).toBe(otherRuns);

      // Shutting the leader down resigns its leadership: the other takes over.
      const [leaderApp, otherApp] = leader === 0 ? [a, b] : [b, a];
      await leaderApp.close();
      await until(() => otherApp.get(LockService).lead('indexer', { expires: 15 }).isLeader);
      expect(recorded.events.filter((entry) => entry.event === 'demoted').map((entry) => (entry.message as LockDemotedMessage).reason)).toEqual(['lost', 'shutdown']);
    } finally {
      recorded.close();
      await a.close();
      await b.close();
    }
  });
});
