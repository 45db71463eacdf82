/**
 * Locks across a PostgreSQL failover: a primary and a standby of the test's own, apps reaching the
 * primary through a proxy that plays the service address, fenced worker processes contending (the
 * soak's), and then the primary killed with SIGKILL, the standby promoted, the address moved. With a
 * synchronous standby nothing committed is lost; with an asynchronous one, cut off before the kill,
 * the last commits are. Each test prints the fencing tokens before and after, how long each worker
 * took to recover, and what was lost.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LockedError, LockEntity, LockManager } from '../lib';
import { FencedStore } from './support/fenced-store';
import { createLockApp, LockApp, sleep, until } from './support/lock-app';
import { describeWithReplication, ReplicatedPostgres } from './support/replicated-postgres';
import { addStats, emptyStats, SoakInstance } from './support/soak-instance';
import { TestDatabase, uniqueName } from './support/test-databases';
import type { SoakWorkerSettings, SoakWorkerStats } from './workers/soak-worker';

const WORKERS = 4;
const LOCK_NAMES = ['alpha', 'beta'];
/** The lease of each worker's critical sections, renewed while they run (the soak worker's operationTimeout is 2 s). */
const EXPIRES = 3;
/** The soak worker's `operationTimeout`. */
const WORKER_OPERATION_TIMEOUT = 2;
/**
 * Seconds from the kill within which every worker is serving again, once the service address moved
 * `moved` seconds after it (docs/guarantees.md): the locks held at the kill end by their lease at the
 * latest, and a worker's calls give up within its operation timeout; a second for scheduling.
 */
const recoveryBound = (moved: number) => moved + EXPIRES + WORKER_OPERATION_TIMEOUT + 1;
/** Acquisitions the primary commits after the asynchronous standby is cut off: more than a sequence logs ahead (32). */
const UNREPLICATED_GRANTS = 60;
/** The lease of the locks held across the failover, and the waits for them. */
const HELD_EXPIRES = 10;
const SHORT_WAIT = 5;
const OPERATION_TIMEOUT = 1;

/** A fencing token as timeline:counter, the two parts PostgreSQL draws it from. */
const shown = (token: number) => `${token} (${Math.floor(token / 2 ** 40)}:${token % 2 ** 40})`;

function clusterDatabase(cluster: ReplicatedPostgres): TestDatabase {
  return { label: 'PostgreSQL primary and standby', kind: 'postgres', available: true, dataSourceOptions: () => ({ type: 'postgres', url: cluster.url }) };
}

/** Soak workers looping over fenced read-modify-write sections on `LOCK_NAMES`, through the service address. */
class FencedLoad {
  private constructor(
    private readonly workers: SoakInstance[],
    private readonly resourceDirectory: string,
  ) {}

  static async start(database: TestDatabase, table: string): Promise<FencedLoad> {
    const resourceDirectory = mkdtempSync(join(tmpdir(), `${table}-`));
    const settings: SoakWorkerSettings = {
      dataSourceOptions: database.dataSourceOptions(table),
      tableName: table,
      lockNames: LOCK_NAMES,
      resourceDirectory,
      expires: EXPIRES,
      freezeChance: 0,
    };
    const load = new FencedLoad(
      Array.from({ length: WORKERS }, () => new SoakInstance(settings)),
      resourceDirectory,
    );
    await until(() => load.workers.every((worker) => worker.stats.sections >= 3), 60_000);
    return load;
  }

  /** The fenced resource `name`, beside the workers' ones. */
  store(name: string): FencedStore {
    return new FencedStore(this.resourceDirectory, name);
  }

  sections(): number[] {
    return this.workers.map((worker) => worker.stats.sections);
  }

  /** The highest token each resource has seen. */
  fences(): Record<string, number> {
    return Object.fromEntries(LOCK_NAMES.map((name) => [name, this.store(name).highestToken()]));
  }

  /**
   * Seconds from `killedAt` until each worker finished a section after `before` (its count once the
   * database had been unreachable long enough for every section done before to be reported, and
   * while it still was: a section after that needs a lock the new primary granted). The workers
   * report every 250 ms. Gives up after a minute (the test then fails on the bound).
   */
  async recovery(killedAt: number, before: number[]): Promise<number[]> {
    const recovered: number[] = [];
    await until(() => {
      this.workers.forEach((worker, i) => {
        if (recovered[i] === undefined && worker.stats.sections > before[i]) recovered[i] = (performance.now() - killedAt) / 1000;
      });
      return this.workers.every((_, i) => recovered[i] !== undefined);
    }, 60_000).catch(() => {
      throw new Error(`Workers still had not recovered a minute after the kill: ${JSON.stringify(this.workers.map((worker) => worker.stats))}`);
    });
    return recovered;
  }

  /** Stops the workers; their statistics in all, and every sign of two holders at once in the resources' logs. */
  async stop(): Promise<{ stats: SoakWorkerStats; violations: string[]; writes: number }> {
    const stats = emptyStats();
    for (const outcome of await Promise.allSettled(this.workers.map((worker) => worker.stop()))) {
      if (outcome.status === 'rejected') throw outcome.reason;
      addStats(stats, outcome.value);
    }
    const stores = LOCK_NAMES.map((name) => this.store(name));
    return { stats, violations: stores.flatMap((store) => store.violations()), writes: stores.reduce((sum, store) => sum + store.entries().length, 0) };
  }

  /** Removes the resources (the workers must have stopped). */
  remove(): void {
    rmSync(this.resourceDirectory, { recursive: true, force: true });
  }
}

/** How a wait ended, and after how many seconds. */
interface WaitOutcome {
  seconds: number;
  lock?: LockEntity;
  error?: unknown;
}

async function waitOutcome(wait: Promise<LockEntity>): Promise<WaitOutcome> {
  const started = performance.now();
  const ended = await wait.then(
    (lock) => ({ lock }),
    (error: unknown) => ({ error }),
  );
  return { ...ended, seconds: (performance.now() - started) / 1000 };
}

const ending = (wait: WaitOutcome) =>
  `${wait.seconds.toFixed(2)} s with ${wait.lock ? `the lock, token ${shown(wait.lock.fencingToken)}` : (wait.error as Error).name}`;

/**
 * One failover under load: fenced workers contending through the service address; a holder keeping
 * one lock through the failover and releasing another once it is over, each waited for across it; an
 * app connected to the standby itself, which takes the new primary's first lock before anyone else
 * can reach it.
 */
class Failover {
  private readonly apps: LockApp[] = [];
  private waits?: Promise<[WaitOutcome, WaitOutcome]>;
  private stopped?: Awaited<ReturnType<FencedLoad['stop']>>;
  holder!: LockApp;
  waiter!: LockApp;
  kept!: LockManager;
  handedOver!: LockManager;
  private onStandby!: LockApp;
  private load!: FencedLoad;

  private constructor(
    private readonly cluster: ReplicatedPostgres,
    readonly table: string,
  ) {}

  static async prepare(cluster: ReplicatedPostgres, synchronous: boolean): Promise<Failover> {
    await cluster.addStandby({ synchronous });
    const failover = new Failover(cluster, uniqueName(synchronous ? 'failover_sync' : 'failover_async'));
    try {
      const app = () => createLockApp(clusterDatabase(cluster), failover.table, { operationTimeout: OPERATION_TIMEOUT });
      failover.apps.push((failover.holder = await app()), (failover.waiter = await app()));
      // On a hot standby: the table it finds complete is only read at start-up.
      const standby = { ...clusterDatabase(cluster), dataSourceOptions: () => ({ type: 'postgres' as const, url: cluster.standbyServer.url }) };
      failover.apps.push((failover.onStandby = await createLockApp(standby, failover.table, { operationTimeout: OPERATION_TIMEOUT })));
      failover.kept = await failover.holder.locks.manager('kept', { expires: HELD_EXPIRES });
      failover.handedOver = await failover.holder.locks.manager('handed-over', { expires: HELD_EXPIRES });
      failover.load = await FencedLoad.start(clusterDatabase(cluster), failover.table);
      return failover;
    } catch (error) {
      await failover.close();
      throw error;
    }
  }

  get workers(): FencedLoad {
    return this.load;
  }

  /**
   * Starts the waits, kills the primary, promotes the standby and moves the service address, timing each
   * step from the kill. Between the promotion and the move, when no app can reach the new primary yet,
   * it reads the resources' fences (every token granted before the kill was shown to its resource by
   * then), runs `promoted`, and takes the new primary's first lock.
   */
  async run(promoted: () => Promise<void> = async () => undefined) {
    this.waits = Promise.all([
      waitOutcome(this.waiter.locks.getLock('kept', { wait: SHORT_WAIT })),
      waitOutcome(this.waiter.locks.getLock('handed-over', { wait: 4 * SHORT_WAIT })),
    ]);
    await sleep(500);
    const killedAt = performance.now();
    this.cluster.killPrimary();
    await this.cluster.promoteStandby();
    const promotedAfter = (performance.now() - killedAt) / 1000;
    const fences = this.load.fences();
    await promoted();
    const first = await this.onStandby.locks.getLock('first', { expires: 60 });
    // A section under way at the kill ends within milliseconds, and the workers report every 250 ms.
    await sleep(killedAt + 300 - performance.now());
    const before = this.load.sections();
    this.cluster.moveService();
    const moved = (performance.now() - killedAt) / 1000;
    const recovered = await this.load.recovery(killedAt, before);
    await this.handedOver.release();
    const [keptWait, handedOverWait] = await this.waits;
    await sleep(1000);
    this.stopped = await this.load.stop();
    const highestBefore = Math.max(...Object.values(fences));
    return {
      killedAt,
      promoted: promotedAfter,
      moved,
      recovered,
      highestBefore,
      first,
      keptWait,
      handedOverWait,
      ...this.stopped,
      report: [
        `  promoted ${promotedAfter.toFixed(2)} s after the kill, service moved at ${moved.toFixed(2)} s`,
        `  every worker serving again within ${Math.max(...recovered).toFixed(2)} s of the kill (each: ${recovered.map((seconds) => seconds.toFixed(2)).join(', ')} s)`,
        `  highest token shown to a resource before the kill (timeline:counter): ${shown(highestBefore)}; first token the new primary granted: ${shown(first.fencingToken)}`,
        `  the wait for the kept lock ended in ${ending(keptWait)}; the one for the released lock in ${ending(handedOverWait)}`,
        `  ${this.stopped.writes} fenced writes by the workers; ${JSON.stringify(this.stopped.stats)}`,
      ],
    };
  }

  async close(): Promise<void> {
    if (this.load && !this.stopped) await this.load.stop().catch(() => undefined);
    this.load?.remove();
    await this.waits?.catch(() => undefined);
    for (const app of this.apps) await app.close().catch(() => undefined);
  }
}

describeWithReplication('Locks across a PostgreSQL failover', (cluster) => {
  it('to a synchronous standby: one holder at a time, tokens only grow, every worker recovers, waits end', async () => {
    const failover = await Failover.prepare(cluster(), true);
    try {
      const outcome = await failover.run();
      console.log(['Failover to a synchronous standby', ...outcome.report].join('\n'));

      expect(outcome.violations).toEqual([]);
      expect(outcome.stats.heldTwice).toBe(0);
      expect(outcome.first.fencingToken).toBeGreaterThan(outcome.highestBefore);
      expect(Math.max(...outcome.recovered)).toBeLessThan(recoveryBound(outcome.moved));
      // The holder kept its lock through the failover: its renewals reached the new primary in time.
      expect(failover.kept.signal.aborted).toBe(false);
      expect(outcome.keptWait.error).toBeInstanceOf(LockedError);
      expect(outcome.keptWait.seconds).toBeLessThan(SHORT_WAIT + OPERATION_TIMEOUT + 2);
      expect(outcome.handedOverWait.lock?.fencingToken).toBeGreaterThan(failover.handedOver.fencingToken);
    } finally {
      await failover.close();
    }
  }, 120_000);

  it('to an asynchronous standby that missed the last commits: tokens still only grow, the resource refuses the older holder', async () => {
    const failover = await Failover.prepare(cluster(), false);
    type Row = { name: string; owner: string; token: number };
    const liveRows = `SELECT name, owner, fencing_token::float8 AS token FROM "${failover.table}" WHERE locked_until > clock_timestamp() ORDER BY name`;
    const sequence = `SELECT last_value::float8 AS last FROM "${failover.table}_fencing_token_seq"`;
    try {
      await cluster().cutReplication();
      const cutAt = performance.now();
      // Granted by the old primary only, and shown to its resource: the new primary grants it again.
      const stale = await failover.holder.locks.manager('stale', { expires: HELD_EXPIRES });
      const staleResource = failover.workers.store('stale');
      staleResource.read(stale.fencingToken);
      const total = () => failover.workers.sections().reduce((sum, count) => sum + count, 0);
      const grantsAtCut = total();
      await until(() => total() >= grantsAtCut + UNREPLICATED_GRANTS, 30_000);
      const oldRows = await cluster().primaryServer.query<Row>(liveRows);
      const [{ last: oldLast }] = await cluster().primaryServer.query<{ last: number }>(sequence);
      let newRows: Row[] = [];
      let newLast = 0;
      const outcome = await failover.run(async () => {
        newRows = await cluster().primaryServer.query<Row>(liveRows);
        [{ last: newLast }] = await cluster().primaryServer.query<{ last: number }>(sequence);
      });
      const cutSeconds = (outcome.killedAt - cutAt) / 1000;
      // Two holders of "stale" now: the new primary does not know the old one's grant.
      const successor = await failover.waiter.locks.getLock('stale', { expires: 60 });
      const successorAt = performance.now();
      staleResource.read(successor.fencingToken);
      const staleWrite = staleResource.write(stale.fencingToken, 1);
      const successorWrite = staleResource.write(successor.fencingToken, 1);
      await until(() => stale.signal.aborted, HELD_EXPIRES * 1000);
      const overlap = (performance.now() - successorAt) / 1000;

      const holds = (rows: Row[], row: Row) => rows.some((other) => other.name === row.name && other.owner === row.owner);
      const listed = (rows: Row[]) => rows.map((row) => `${row.name} ${shown(row.token)}`).join(', ') || 'none';
      console.log(
        [
          `Failover to an asynchronous standby, cut off ${cutSeconds.toFixed(2)} s (${UNREPLICATED_GRANTS} worker grants and more) before the kill`,
          ...outcome.report,
          `  lost: ${oldLast - newLast} token draws or more (the old primary's sequence had reached ${oldLast}, the new one resumed after ${newLast}); ` +
            `locks live on the old primary just before the kill that the new one did not know: ${listed(oldRows.filter((row) => !holds(newRows, row)))}; ` +
            `live on the new one though the old one had released them: ${listed(newRows.filter((row) => !holds(oldRows, row)))}`,
          `  "stale", granted by the old primary only (${shown(stale.fencingToken)}), granted again by the new one (${shown(successor.fencingToken)}): ` +
            `the resource ${staleWrite ? 'accepted' : 'refused'} the older holder and ${successorWrite ? 'accepted' : 'refused'} the newer; ` +
            `the older was told it lost the lock ${overlap.toFixed(2)} s later`,
        ].join('\n'),
      );

      // The test did lose commits: the new primary's sequence is behind the old one's.
      expect(newLast).toBeLessThan(oldLast);
      expect(outcome.first.fencingToken).toBeGreaterThan(outcome.highestBefore);
      expect(successor.fencingToken).toBeGreaterThan(stale.fencingToken);
      expect({ staleWrite, successorWrite }).toEqual({ staleWrite: false, successorWrite: true });
      expect(outcome.violations).toEqual([]);
      expect(Math.max(...outcome.recovered)).toBeLessThan(recoveryBound(outcome.moved));
      for (const wait of [outcome.keptWait, outcome.handedOverWait]) {
        if (!wait.lock) expect(wait.error).toBeInstanceOf(LockedError);
      }
      expect(outcome.keptWait.seconds).toBeLessThan(SHORT_WAIT + OPERATION_TIMEOUT + 2);
    } finally {
      await failover.close();
    }
  }, 120_000);
});
