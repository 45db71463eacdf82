import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CronRun, CronWorkerSettings } from './workers/cron-worker';
import { createLockApp, dropLockTable, sleep } from './support/lock-app';
import { compiledScript, Finished, ScriptProcess } from './support/processes';
import { describeEachDatabase, startOnEachDatabase, TestDatabase, uniqueName } from './support/test-databases';

const PERIOD_MS = 5000;
const WINDOW_MS = 30_000;
const LATE_MS = 2000;
const JOB_MS = 1000;

/** The instances, each its own process; none has a minHold. */
const INSTANCES = [
  { instance: 'on-time', clockSkewMs: 0, jobMilliseconds: JOB_MS },
  // Its clock is 2 s behind, so its timer fires 2 s after the others', when their runs are over.
  { instance: 'late-2s', clockSkewMs: -LATE_MS, jobMilliseconds: JOB_MS },
  { instance: 'short-job', clockSkewMs: 0, jobMilliseconds: 20 },
];

interface ClusterRun {
  runs: CronRun[];
  /** The ticks (fire times, real epoch ms) at which every instance was up, and every run was over. */
  ticks: number[];
  /** Per instance, the reasons of its skips, by the tick it skipped. */
  skips: Map<string, Map<number, string>>;
  exits: Finished[];
}

/** The tick a run or skip was for: the latest fire time by the instance's clock (which no timer fires early here). */
const tickOf = (clock: number) => Math.floor(clock / PERIOD_MS) * PERIOD_MS;

/** Three instances of an app with one `@Cron('*\/5 * * * * *')` job guarded by `@WithLock`, for 30 seconds. */
async function runCluster(database: TestDatabase): Promise<ClusterRun> {
  const isolation = uniqueName('cron_ticks_cluster');
  const runLog = join(tmpdir(), `${isolation}.runs`);
  writeFileSync(runLog, '');
  // Create the table once, so the instances race on the lock, not on the schema.
  await (await createLockApp(database, isolation)).close();
  try {
    const workers = INSTANCES.map(({ instance, clockSkewMs, jobMilliseconds }) => {
      const settings: CronWorkerSettings = {
        dataSourceOptions: database.dataSourceOptions(isolation),
        tableName: isolation,
        instance,
        runLog,
        schedule: '*/5 * * * * *',
        lockOptions: { expires: 30 },
        jobMilliseconds,
      };
      return new ScriptProcess('workers/cron-worker.ts', [JSON.stringify(settings)], {
        execArgv: ['-r', compiledScript('workers/skewed-clock.ts')],
        env: { CLOCK_SKEW_MS: String(clockSkewMs) },
      });
    });
    const readyAt = await Promise.all(workers.map(async (worker) => Number((await worker.line(/^ready \d+$/)).split(' ')[1])));
    const firstTick = Math.ceil((Math.max(...readyAt) + 1) / PERIOD_MS) * PERIOD_MS;
    const ticks = Array.from({ length: WINDOW_MS / PERIOD_MS }, (_, index) => firstTick + index * PERIOD_MS);
    // The late instance's timer for the last tick fires 2 s after it; its run, if it ran, a second more.
    await sleep(ticks.at(-1)! + LATE_MS + JOB_MS + 500 - Date.now());
    for (const worker of workers) worker.kill('SIGTERM');
    const exits = await Promise.all(workers.map((worker) => worker.finished));
    const runs: CronRun[] = readFileSync(runLog, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line));
    const skips = new Map(
      INSTANCES.map(({ instance }, index) => {
        const lines = exits[index].stdout.split('\n').filter((line) => line.startsWith('skipped '));
        return [instance, new Map(lines.map((line) => [tickOf(Number(line.split(' ')[1])), line.split(' ').slice(2).join(' ')]))];
      }),
    );
    return { runs, ticks, skips, exits };
  } finally {
    rmSync(runLog, { force: true });
    await dropLockTable(database, isolation);
  }
}

/** Tick → instance, for the reader of the test's output. */
function table(database: TestDatabase, { runs, ticks, skips }: ClusterRun): string {
  const rows = ticks.map((tick) => {
    const ran = runs.filter((run) => tickOf(run.clock) === tick);
    const ranBy = ran.map((run) => `${run.instance} (token ${run.fencingToken}, +${Math.round(run.startedAt - tick)} ms)`).join(', ') || '-';
    const skippedBy = [...skips].filter(([, skipped]) => skipped.has(tick)).map(([instance]) => instance).join(', ');
    return `| ${new Date(tick).toISOString().slice(11, 19)} | ${ranBy} | ${skippedBy} |`;
  });
  return [`${database.label}:`, '| tick (UTC) | ran on | skipped by |', '|---|---|---|', ...rows].join('\n');
}

const clusters = startOnEachDatabase(runCluster);

describeEachDatabase('Three instances of a @Cron job every 5 s with @WithLock and no minHold, one of them 2 s late', (database) => {
  it('run each fire time exactly once over 30 seconds, never two runs at a time', async () => {
    const cluster = await clusters.get(database.kind)!;
    console.log(table(database, cluster));
    const { runs, ticks, skips, exits } = cluster;
    for (const exit of exits) {
      // Nest re-raises the signal once it has shut down; the cron library may warn on stderr about late timers.
      expect({ signal: exit.signal, errors: exit.stderr.split('\n').filter((line) => line && !line.startsWith('[Cron]')) }).toEqual({
        signal: 'SIGTERM',
        errors: [],
      });
    }
    const runsOf = (tick: number) => runs.filter((run) => tickOf(run.clock) === tick).map((run) => run.instance);
    expect(ticks.map((tick) => [new Date(tick).toISOString(), runsOf(tick).length])).toEqual(
      ticks.map((tick) => [new Date(tick).toISOString(), 1]),
    );

    // Each run ended before the next began, and the fencing tokens grew from one to the next.
    const inOrder = [...runs].sort((one, other) => one.startedAt - other.startedAt);
    const overlaps = inOrder.slice(1).filter((run, index) => run.startedAt < inOrder[index].endedAt);
    expect(overlaps).toEqual([]);
    const tokens = inOrder.map((run) => run.fencingToken);
    expect(tokens).toEqual([...tokens].sort((one, other) => one - other));

    // The late instance came to every tick after it had run, and skipped each as already taken.
    const lateSkips = skips.get('late-2s')!;
    for (const tick of ticks.filter((tick) => !runsOf(tick).includes('late-2s'))) {
      expect(lateSkips.get(tick)).toMatch(/^Tick \S+ of lock "tick" was already taken by (on-time|short-job)\.$/);
    }
  }, 90_000);
});
