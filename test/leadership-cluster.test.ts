import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LeaderWorkerSettings } from './workers/leader-worker';
import { FencedStore } from './support/fenced-store';
import { createLockApp, dropLockTable, sleep, until } from './support/lock-app';
import { ScriptProcess } from './support/processes';
import { describeEachDatabase, startOnEachDatabase, TestDatabase, uniqueName } from './support/test-databases';

/** Seconds of the leaders' lease. */
const EXPIRES = 2;

interface WorkerEvent {
  event: 'ready' | 'elected' | 'demoted' | 'tick' | 'fenced' | 'skipped' | 'freezing' | 'woke' | 'demoted during the call';
  pid: number;
  /** Epoch milliseconds, fractions kept. */
  at: number;
  token?: number;
  reason?: string;
  isLeader?: boolean;
}

/** Wall-clock time with the precision of the monotonic clock, as the workers report it. */
const now = () => performance.timeOrigin + performance.now();

/** A worker of the cluster, with every event it reported so far. */
class Instance {
  readonly events: WorkerEvent[] = [];
  readonly process: ScriptProcess;
  killedAt?: number;

  constructor(settings: LeaderWorkerSettings) {
    const process = new ScriptProcess('workers/leader-worker.ts', [JSON.stringify(settings)], { input: true });
    this.process = process;
    void (async () => {
      for (;;) this.events.push(await process.nextEvent<WorkerEvent>());
    })().catch(() => undefined);
  }

  of(event: WorkerEvent['event']): WorkerEvent[] {
    return this.events.filter((entry) => entry.event === event);
  }

  /** The first event of a kind reported after `after` (epoch ms). */
  async next(event: WorkerEvent['event'], after: number, timeoutMs = 10_000): Promise<WorkerEvent> {
    await until(() => this.events.some((entry) => entry.event === event && entry.at > after), timeoutMs);
    return this.events.find((entry) => entry.event === event && entry.at > after)!;
  }

  freeze(ms: number): void {
    this.process.send({ do: 'freeze', ms });
  }

  /** When its event loop stalled, by its own report: it could not act from then until it woke and found its term over. */
  get frozenAt(): number | undefined {
    return this.of('freezing')[0]?.at;
  }

  kill(): void {
    this.killedAt = now();
    this.process.kill('SIGKILL');
  }
}

interface Cluster {
  instances: Instance[];
  store: FencedStore;
  /** Starts one more instance, and resolves once it is ready. */
  add(): Promise<Instance>;
  close(): Promise<void>;
}

async function startCluster(database: TestDatabase, count: number, isolation: string): Promise<Cluster> {
  const directory = mkdtempSync(join(tmpdir(), `${isolation}-`));
  // Create the table once, so that the instances race on the lock, not on the schema.
  await (await createLockApp(database, isolation)).close();
  const instances: Instance[] = [];
  const settings = (index: number): LeaderWorkerSettings => ({
    dataSourceOptions: database.dataSourceOptions(isolation),
    tableName: isolation,
    instance: `instance-${index + 1}`,
    expires: EXPIRES,
    directory,
  });
  for (let index = 0; index < count; index++) instances.push(new Instance(settings(index)));
  await until(() => instances.every((instance) => instance.of('ready').length > 0), 30_000);
  return {
    instances,
    store: new FencedStore(directory, 'leader'),
    async add() {
      const instance = new Instance(settings(instances.length));
      instances.push(instance);
      await until(() => instance.of('ready').length > 0, 30_000);
      return instance;
    },
    async close() {
      for (const instance of instances) instance.process.kill('SIGKILL');
      await Promise.all(instances.map((instance) => instance.process.finished));
      rmSync(directory, { recursive: true, force: true });
      await dropLockTable(database, isolation);
    },
  };
}

/**
 * The first `elected` reported after `after` by any instance, or by any but `previous`: an instance's
 * times come from its own clock, so a hand-over faster than the processes' clocks differ can be
 * reported as elected before the predecessor's demotion; after its election, by another, is sure.
 */
async function nextLeader(
  instances: Instance[],
  after: number,
  timeoutMs = 10_000,
  previous?: Instance,
): Promise<{ leader: Instance; elected: WorkerEvent }> {
  const elected = () => instances.filter((instance) => instance !== previous).flatMap((instance) => instance.of('elected').filter((entry) => entry.at > after).map((entry) => ({ leader: instance, elected: entry })));
  await until(() => elected().length > 0, timeoutMs);
  return elected().sort((a, b) => a.elected.at - b.elected.at)[0];
}

interface Term {
  pid: number;
  token: number;
  start: number;
  end: number;
}

/**
 * Each instance's terms, from its own events. A killed instance's last term ended when it was killed; a
 * frozen one's when its event loop stalled (the test checks apart that it did not act as leader on waking).
 */
function termsOf(instances: Instance[]): Term[] {
  return instances.flatMap((instance) =>
    instance.of('elected').map(({ pid, token, at }) => {
      const demoted = instance.events.find((entry) => entry.event === 'demoted' && entry.token === token);
      const stalled = instance.frozenAt !== undefined && instance.frozenAt > at ? instance.frozenAt : undefined;
      const end = Math.min(demoted?.at ?? Infinity, stalled ?? Infinity, instance.killedAt ?? Infinity);
      if (end === Infinity) throw new Error(`The term of token ${token} of process ${pid} never ended.`);
      return { pid, token: token!, start: at, end };
    }),
  );
}

/** What every run must show: terms one after another with rising tokens, and every write made inside its term. */
function expectOneLeaderAtATime(instances: Instance[], store: FencedStore): Term[] {
  const terms = termsOf(instances).sort((a, b) => a.start - b.start);
  for (let index = 1; index < terms.length; index++) {
    expect(terms[index].token).toBeGreaterThan(terms[index - 1].token);
    // The earlier leader's term ended before the next one's began.
    expect(terms[index].start).toBeGreaterThanOrEqual(terms[index - 1].end);
  }
  const events = instances.flatMap((instance) => instance.events);
  expect(events.filter((entry) => entry.event === 'fenced' || entry.event === 'demoted during the call')).toEqual([]);
  const ticks = events.filter((entry) => entry.event === 'tick');
  expect(ticks.length).toBeGreaterThan(0);
  for (const tick of ticks) {
    const term = terms.find((candidate) => candidate.token === tick.token)!;
    expect({ pid: tick.pid, inTerm: tick.at >= term.start && tick.at <= term.end }).toEqual({ pid: term.pid, inTerm: true });
  }
  // The store accepted writes of each token from one process only.
  const writers = new Map<string, Set<string>>();
  for (const line of store.log().trim().split('\n')) {
    const [token, pid] = line.split(' ');
    writers.set(token, (writers.get(token) ?? new Set()).add(pid));
  }
  expect([...writers.values()].filter((pids) => pids.size > 1)).toEqual([]);
  return terms;
}

interface ClusterRun {
  terms: Term[];
  resignHandOverMs: number;
  killReplacementMs: number;
  shutdownHandOverMs: number;
}

/** Three instances for a dozen seconds: the leader resigns, then the next is killed (SIGKILL), then the next shuts down. */
async function runCluster(database: TestDatabase): Promise<ClusterRun & { check: () => Term[] }> {
  const cluster = await startCluster(database, 3, uniqueName('leader_cluster'));
  const { instances, store } = cluster;
  try {
    const first = await nextLeader(instances, 0, 15_000);
    await sleep(800);
    // It campaigns again a second later, so that the hand-over measured is to another instance.
    first.leader.process.send({ do: 'resign', rejoinAfterMs: 1000 });
    const resigned = await first.leader.next('demoted', first.elected.at);
    const second = await nextLeader(instances, first.elected.at, undefined, first.leader);
    expect(second.leader).not.toBe(first.leader);
    await sleep(800);
    second.leader.kill();
    const third = await nextLeader(instances, second.leader.killedAt!, (EXPIRES + 5) * 1000);
    // A process killed while it held the store's own mark leaves it behind.
    store.removeMarkOf(second.leader.process.pid);
    await sleep(800);
    third.leader.process.send({ do: 'exit' });
    const shutdown = await third.leader.next('demoted', third.elected.at);
    const fourth = await nextLeader(instances, third.elected.at, undefined, third.leader);
    expect(fourth.leader).not.toBe(third.leader);
    await sleep(500);
    expect(resigned.reason).toBe('resigned');
    expect(shutdown.reason).toBe('shutdown');
    expect(await third.leader.process.finished).toMatchObject({ code: 0 });
    for (const instance of instances) instance.process.send({ do: 'exit' });
    await Promise.all(instances.map((instance) => instance.process.finished));
    return {
      terms: termsOf(instances),
      check: () => expectOneLeaderAtATime(instances, store),
      resignHandOverMs: second.elected.at - resigned.at,
      killReplacementMs: third.elected.at - second.leader.killedAt!,
      shutdownHandOverMs: fourth.elected.at - shutdown.at,
    };
  } finally {
    await cluster.close();
  }
}

const runs = startOnEachDatabase(runCluster);

describeEachDatabase('Three app instances leading one name with @LeaderOnly', (database) => {
  it('have at most one leader at any moment, through a resign, a SIGKILL and a shutdown, with rising fencing tokens', async () => {
    const run = await runs.get(database.kind)!;
    const terms = run.check();
    expect(terms.length).toBeGreaterThanOrEqual(4);
    console.log(
      `${database.label}: hand-over after resign ${run.resignHandOverMs.toFixed(1)} ms, after shutdown ${run.shutdownHandOverMs.toFixed(1)} ms; ` +
        `SIGKILL replaced after ${run.killReplacementMs.toFixed(0)} ms (expires ${EXPIRES} s)`,
    );
    // A waiting instance is woken by NOTIFY on PostgreSQL; elsewhere it polls (pollInterval: 1 s).
    const handOverBound = database.kind === 'postgres' ? 200 : 1200;
    expect(run.resignHandOverMs).toBeLessThan(handOverBound);
    expect(run.shutdownHandOverMs).toBeLessThan(handOverBound);
    expect(run.killReplacementMs).toBeLessThan((EXPIRES + 1) * 1000);
  });
});

describeEachDatabase('A leader whose event loop stalls past its lease', (database) => {
  it('is replaced meanwhile, and when it wakes it does not lead and skips its @LeaderOnly tick', async () => {
    const cluster = await startCluster(database, 1, uniqueName('leader_frozen'));
    const [frozen] = cluster.instances;
    try {
      const first = await nextLeader(cluster.instances, 0, 15_000);
      expect(first.elected.pid).toBe(frozen.process.pid);
      const other = await cluster.add();
      await sleep(300);
      // Stalled for longer than the lease: the other instance takes over meanwhile.
      frozen.freeze(EXPIRES * 1000 + 1500);
      const woke = await frozen.next('woke', first.elected.at, 15_000);
      const second = await nextLeader([other], first.elected.at);
      expect(second.elected.at).toBeLessThan(woke.at);
      expect(woke.isLeader).toBe(false);
      // Its @LeaderOnly tick, due long ago, ran after it woke and was skipped.
      await frozen.next('skipped', woke.at);
      await sleep(300);
      expect(frozen.events.filter((entry) => entry.event === 'tick' && entry.at > woke.at)).toEqual([]);
      const demoted = frozen.of('demoted');
      expect(demoted).toEqual([expect.objectContaining({ token: first.elected.token, reason: 'lost' })]);
      // It learned only when it woke, after the other instance had been elected.
      expect(demoted[0].at).toBeGreaterThan(second.elected.at);
      for (const instance of cluster.instances) instance.process.send({ do: 'exit' });
      await Promise.all(cluster.instances.map((instance) => instance.process.finished));
      expectOneLeaderAtATime(cluster.instances, cluster.store);
    } finally {
      await cluster.close();
    }
  });
});
