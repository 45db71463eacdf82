import { Client } from 'pg';
import { LockedError } from '../lib';
import type { FairWaiterCommand, FairWaiterReport } from './workers/fair-waiter';
import { createLockApp, dropLockTable, LockApp, until } from './support/lock-app';
import { ScriptProcess } from './support/processes';
import { describeOnDatabase, POSTGRES_URL, testDatabase, uniqueName } from './support/test-databases';
import type { WorkerDatabase } from './support/worker-app';

/** As documented (docs/api.md, waiting): each process renews its waiters' places this often; a place lapses this long after its last renewal. */
const RENEWAL_MS = 500;
const LAPSE_MS = 2000;
/** Room for round trips and a busy machine, over the longest a behaviour may take. */
const MARGIN_MS = 1000;
/** A waiter that stops waiting has given up its place within this (a place left to lapse would stay for LAPSE_MS). */
const LEAVING_MS = 500;
/** A waiter next in line gets a released lock within this, when nothing dead stands ahead of it. */
const HAND_OFF_MS = 1000;
/** Seconds a waiter that is to be served waits: long enough never to run out here. */
const LONG_WAIT = 20;

interface Place {
  ticket: string;
  live: boolean;
}

/** Complaints a test ends with: what a user would have seen go wrong, when `right` is false. */
const unless = (right: boolean, seen: string): string[] => (right ? [] : [seen]);

/** The most turns the other processes took in a row before one of `contender`'s own, counting from the start. */
function mostOvertaken(turns: Array<{ contender: number }>, contender: number): number {
  let most = 0;
  let inARow = 0;
  for (const turn of turns) {
    if (turn.contender !== contender) inARow++;
    else [most, inARow] = [Math.max(most, inARow), 0];
  }
  return most;
}

describeOnDatabase(testDatabase('postgres'), 'Fair waiting across processes', (database) => {
  const isolation = uniqueName('fair');
  const workerDatabase: WorkerDatabase = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation };
  /** The test's own app instance: it holds the locks that the waiters queue for, and reads the queue. */
  let app: LockApp;
  /** App instances in processes of their own; waiter 1 is `waiters[0]`. */
  let waiters: ScriptProcess[] = [];
  /** One more, killed while it waits. */
  let doomed: ScriptProcess;

  beforeAll(async () => {
    // The table first, so that the processes do not race to create it.
    app = await createLockApp(database, isolation);
    const started = Array.from({ length: 6 }, () => new ScriptProcess('workers/fair-waiter.ts', [JSON.stringify(workerDatabase)], { input: true }));
    await Promise.all(started.map((waiter) => waiter.nextEvent()));
    [doomed, ...waiters] = started;
  });
  afterAll(async () => {
    doomed?.kill('SIGKILL');
    for (const waiter of waiters) waiter.send({ stop: true } satisfies FairWaiterCommand);
    await Promise.all([doomed, ...waiters].map((waiter) => waiter?.finished));
    await app?.close();
    await dropLockTable(database, isolation);
  });

  /** The places in the queue of `name`, first in line first. */
  function places(name: string): Promise<Place[]> {
    // A place handed the lock waits no more: it stays until that lock's release.
    return app.dataSource.query(`SELECT ticket, lapses_at > now() AS live FROM "${isolation}_queue" WHERE name = $1 AND NOT granted ORDER BY ticket`, [name]);
  }

  /** Sends `waiter` to wait for `name`, and resolves once it holds the `place`-th place in the queue. */
  async function beginWaiting(waiter: ScriptProcess, name: string, place: number, { seconds = LONG_WAIT, holdMs = 0 } = {}): Promise<void> {
    waiter.send({ wait: name, seconds, holdMs } satisfies FairWaiterCommand);
    try {
      await until(async () => (await places(name)).length === place, 5000);
    } catch (error) {
      throw new Error(`Waiter ${place} has no place in the queue of "${name}" after asking for the lock: ${(error as Error).message}`);
    }
  }

  /**
   * The next report of `waiter` on the lock `name`, which must be `event`. Reports on other locks are
   * passed over: a test that failed half-way leaves its own behind.
   */
  async function nextReport<Event extends FairWaiterReport['event']>(
    waiter: ScriptProcess,
    name: string,
    event: Event,
  ): Promise<Extract<FairWaiterReport, { event: Event }>> {
    let report: FairWaiterReport;
    do report = await waiter.nextEvent<FairWaiterReport>();
    while (report.lock !== name);
    expect(report).toMatchObject({ event });
    return report as Extract<FairWaiterReport, { event: Event }>;
  }

  /** When (`performance.now()`) `waiter` reports that it took the lock `name`. */
  function servedAt(waiter: ScriptProcess, name: string): Promise<number> {
    const served = nextReport(waiter, name, 'acquired').then(() => performance.now());
    // Awaited after the checks that come first.
    served.catch(() => undefined);
    return served;
  }

  it('serves the waiters of five processes in the order they began waiting, with fencing tokens growing in that order', async () => {
    const held = await app.locks.getLock('order', { expires: 60 });
    for (const [index, waiter] of waiters.entries()) await beginWaiting(waiter, 'order', index + 1, { holdMs: 100 });
    /** Waiter numbers in the order they got the lock. */
    const served: number[] = [];
    const tokens: number[] = [];
    const allServed = Promise.all(
      waiters.map(async (waiter, index) => {
        tokens[index] = (await nextReport(waiter, 'order', 'acquired')).fencingToken;
        served.push(index + 1);
        await nextReport(waiter, 'order', 'released');
      }),
    );
    await app.locks.unlock(held);
    await allServed;

    const outOfTurn = waiters.slice(1).flatMap((_, index) => {
      const [earlier, later] = [index + 1, index + 2];
      return unless(served.indexOf(earlier) < served.indexOf(later), `waiter ${later} got the lock before waiter ${earlier}`);
    });
    expect(outOfTurn).toEqual([]);
    const before = [held.fencingToken, ...tokens];
    const fencing = tokens.flatMap((token, index) => {
      const previous = index === 0 ? "the holder's" : `waiter ${index}'s`;
      return unless(token > before[index], `waiter ${index + 1}'s fencing token ${token} is not above ${previous} (${before[index]})`);
    });
    expect(fencing).toEqual([]);
  });

  it("hands each waiter the lock in its turn, telling its app alone, on that app's channel, and only the last release to every app", async () => {
    const held = await app.locks.getLock('addressed', { expires: 60 });
    const inLine = waiters.slice(0, 3);
    for (const [index, waiter] of inLine.entries()) await beginWaiting(waiter, 'addressed', index + 1, { holdMs: 100 });
    const queued: Array<{ waiter: string; channel: string }> = await app.dataSource.query(
      `SELECT waiter, channel FROM "${isolation}_queue" WHERE name = 'addressed' ORDER BY ticket`,
    );
    expect(new Set(queued.map(({ channel }) => channel)).size).toBe(3);
    const listener = new Client({ connectionString: POSTGRES_URL });
    await listener.connect();
    try {
      const heard: Array<{ channel: string; payload?: string }> = [];
      listener.on('notification', ({ channel, payload }) => heard.push({ channel, payload }));
      for (const channel of [isolation, ...queued.map((place) => place.channel)]) await listener.query(`LISTEN "${channel}"`);
      const allServed = Promise.all(
        inLine.map(async (waiter) => {
          await nextReport(waiter, 'addressed', 'acquired');
          await nextReport(waiter, 'addressed', 'released');
        }),
      );
      await app.locks.unlock(held);
      await allServed;
      await until(() => heard.length >= 4, 2000).catch(() => undefined);
      // Time for a stray notice to arrive too.
      await new Promise((resolve) => setTimeout(resolve, 300));
      // A hand-over's notice is the place, then the lock's fencing token, expiry and start in epoch seconds.
      const handedOver = heard.map(({ channel, payload }) => ({ channel, payload: payload?.replace(/^(\S+) \d+ \d+\.\d+ \d+\.\d+$/, '$1 handed the lock') }));
      expect(handedOver).toEqual([
        ...queued.map(({ waiter, channel }) => ({ channel, payload: `${waiter} handed the lock` })),
        { channel: isolation, payload: ' addressed' },
      ]);
    } finally {
      await listener.end();
    }
  });

  it(`keeps a released lock from tryLock while a dead waiter's place is live, and serves the waiter behind it within ${(RENEWAL_MS + LAPSE_MS) / 1000} s of the release`, async () => {
    const [survivor] = waiters;
    const held = await app.locks.getLock('dead', { expires: 60 });
    await beginWaiting(doomed, 'dead', 1);
    const [{ listener }] = await app.dataSource.query(`SELECT listener FROM "${isolation}_queue" WHERE name = 'dead'`);
    doomed.kill('SIGKILL');
    await doomed.finished;
    // Dead once the server has seen its connections close: a waiter that dies in the instant of a hand-over
    // keeps the lock it was handed until its lease ends, as one that dies just after taking a lock does.
    await until(async () => (await app.dataSource.query('SELECT FROM pg_stat_activity WHERE pid = $1', [listener])).length === 0);
    await app.locks.unlock(held);
    const releasedAt = performance.now();

    // Nobody holds the lock now, yet it is the dead waiter's turn until its place lapses.
    const jumped = await app.locks.tryLock('dead');
    const [deadPlace] = await places('dead');
    const sinceRelease = Math.round(performance.now() - releasedAt);
    expect([
      ...unless(deadPlace?.live === true, `the dead waiter's place was gone or lapsed ${sinceRelease} ms after the release, too soon to check tryLock against it`),
      ...unless(jumped === null, `tryLock took the released lock while a waiter's place was still live: it jumped the queue`),
    ]).toEqual([]);

    const served = servedAt(survivor, 'dead');
    await beginWaiting(survivor, 'dead', 2);
    const waitedMs = Math.round((await served) - releasedAt);
    const limitMs = RENEWAL_MS + LAPSE_MS + MARGIN_MS;
    expect(unless(waitedMs < limitMs, `waiter 2 got the lock ${waitedMs} ms after the release, over ${limitMs} ms, with only a dead waiter ahead of it`)).toEqual([]);
    await nextReport(survivor, 'dead', 'released');
  });

  const leavings: Array<{ how: string; name: string; seconds: number; leave: (waiter: ScriptProcess) => void; rejection: object }> = [
    {
      how: 'its signal aborts',
      name: 'aborted',
      seconds: LONG_WAIT,
      leave: (waiter) => waiter.send({ abort: 'aborted', reason: 'no longer needed' } satisfies FairWaiterCommand),
      rejection: { error: 'Error', message: 'no longer needed' },
    },
    { how: 'its wait runs out', name: 'timed-out', seconds: 2, leave: () => undefined, rejection: { error: 'LockedError' } },
  ];

  it.each(leavings)('takes a waiter out of the queue at once when $how, and hands the released lock to the one behind it', async ({ name, seconds, leave, rejection }) => {
    const [leaver, next] = waiters;
    const held = await app.locks.getLock(name, { expires: 60 });
    await beginWaiting(leaver, name, 1, { seconds });
    await beginWaiting(next, name, 2);
    leave(leaver);
    expect(await nextReport(leaver, name, 'failed')).toMatchObject(rejection);
    await until(async () => (await places(name)).length === 1, LEAVING_MS).catch(() => {
      throw new Error(`Waiter 1's place was still in the queue ${LEAVING_MS} ms after its wait ended.`);
    });

    await app.locks.unlock(held);
    const releasedAt = performance.now();
    const waitedMs = Math.round((await servedAt(next, name)) - releasedAt);
    expect(unless(waitedMs < HAND_OFF_MS, `waiter 2 got the lock ${waitedMs} ms after the release, although waiter 1 had left the queue`)).toEqual([]);
    await nextReport(next, name, 'released');
  });

  it('takes no place for tryLock or getLock with wait 0: they fail while the lock is held, and take it once it is free and nobody waits', async () => {
    const held = await app.locks.getLock('try', { expires: 60 });
    expect(await app.locks.tryLock('try')).toBeNull();
    await expect(app.locks.getLock('try', { wait: 0 })).rejects.toBeInstanceOf(LockedError);
    expect(await places('try')).toEqual([]);

    await app.locks.unlock(held);
    const tried = await app.locks.tryLock('try');
    expect(tried).not.toBeNull();
    await app.locks.unlock(tried!);
    await app.locks.unlock(await app.locks.getLock('try', { wait: 0 }));
    expect(await places('try')).toEqual([]);
  });

  it('lets no process starve while four of them keep taking the lock for 3 s: between two turns of one, each other takes it at most twice', async () => {
    const contenders = waiters.slice(0, 4);
    // All start together, once each has the command.
    const from = Date.now() + 200;
    for (const contender of contenders) contender.send({ contend: 'busy', seconds: 10, holdMs: 20, from, until: from + 3000 } satisfies FairWaiterCommand);
    const outcomes = await Promise.all(contenders.map((contender) => nextReport(contender, 'busy', 'contended')));

    // Fencing tokens put every process's turns in the order the database granted them.
    const turns = outcomes
      .flatMap(({ sections }, index) => sections.map(({ fencingToken }) => ({ contender: index + 1, fencingToken })))
      .sort((one, other) => one.fencingToken - other.fencingToken);
    const equalShare = turns.length / contenders.length;
    const meanWaitMs = outcomes.flatMap(({ sections }) => sections).reduce((sum, { waitedMs }) => sum + waitedMs, 0) / turns.length;
    const overtakingLimit = 2 * (contenders.length - 1);
    const figures = outcomes.map(({ sections, timedOut }, index) => ({
      contender: index + 1,
      turns: sections.length,
      overtaken: mostOvertaken(turns, index + 1),
      longestWaitMs: Math.round(Math.max(0, ...sections.map(({ waitedMs }) => waitedMs))),
      timedOut,
    }));
    const complaints = figures.flatMap(({ contender, turns: taken, overtaken, longestWaitMs, timedOut }) => [
      ...unless(taken >= equalShare / 2, `process ${contender} took the lock ${taken} times of ${turns.length}, under half an equal share (${equalShare})`),
      ...unless(overtaken <= overtakingLimit, `process ${contender} saw the others take the lock ${overtaken} times in a row while it waited`),
      ...unless(longestWaitMs <= 10 * meanWaitMs, `process ${contender} once waited ${longestWaitMs} ms, over 10 times the mean wait (${Math.round(meanWaitMs)} ms)`),
      ...unless(timedOut === 0, `process ${contender} gave up ${timedOut} times after waiting 10 s`),
    ]);
    const summary = figures.map(
      ({ contender, turns: taken, overtaken, longestWaitMs, timedOut }) =>
        `process ${contender}: ${taken} turns, overtaken ${overtaken} times in a row at most, longest wait ${longestWaitMs} ms, ${timedOut} waits ran out`,
    );
    expect(complaints.length === 0 ? [] : [...complaints, ...summary]).toEqual([]);
  });
});
