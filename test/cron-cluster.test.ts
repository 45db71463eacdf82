import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CronRun, CronWorkerSettings } from './workers/cron-worker';
import { createLockApp, dropLockTable, sleep } from './support/lock-app';
import { Finished, ScriptProcess } from './support/processes';
import { describeEachDatabase, startOnEachDatabase, TestDatabase, uniqueName } from './support/test-databases';

const INSTANCES = 3;
const SECONDS = 10;

interface ClusterRun {
  /** Which instances ran each tick second. */
  ticks: Map<number, string[]>;
  /** The first and last tick seconds at which every instance was up. */
  firstFull: number;
  lastFull: number;
  exits: Finished[];
}

/** Three instances of an app with the same `@Cron('* * * * * *')` job guarded by `@WithLock` (no minHold), for ten seconds. */
async function runCluster(database: TestDatabase): Promise<ClusterRun> {
  const isolation = uniqueName('cron_cluster');
  const runLog = join(tmpdir(), `${isolation}.runs`);
  writeFileSync(runLog, '');
  // Create the table once, so the instances race on the lock, not on the schema.
  await (await createLockApp(database, isolation)).close();
  try {
    const workers = Array.from({ length: INSTANCES }, (_, index) => {
      const settings: CronWorkerSettings = {
        dataSourceOptions: database.dataSourceOptions(isolation),
        tableName: isolation,
        instance: `instance-${index + 1}`,
        runLog,
        schedule: '* * * * * *',
        lockOptions: { expires: 5 },
        jobMilliseconds: 0,
      };
      return new ScriptProcess('workers/cron-worker.ts', [JSON.stringify(settings)]);
    });
    const readyAt = await Promise.all(workers.map(async (worker) => Number((await worker.line(/^ready \d+$/)).split(' ')[1])));
    // A tick at second S fires at S.000 (plus timer delays): the first one every instance saw is the second after the last became ready.
    const firstFull = Math.floor(Math.max(...readyAt) / 1000) + 1;
    await sleep((firstFull + SECONDS) * 1000 + 300 - Date.now());
    const stopAt = Date.now();
    for (const worker of workers) worker.kill('SIGTERM');
    const exits = await Promise.all(workers.map((worker) => worker.finished));
    const ticks = new Map<number, string[]>();
    for (const line of readFileSync(runLog, 'utf8').trim().split('\n').filter(Boolean)) {
      const { clock, instance }: CronRun = JSON.parse(line);
      const second = Math.floor(clock / 1000);
      ticks.set(second, [...(ticks.get(second) ?? []), instance]);
    }
    // The tick of the second in which the instances were stopped may have been cut short.
    return { ticks, firstFull, lastFull: Math.floor(stopAt / 1000) - 1, exits };
  } finally {
    rmSync(runLog, { force: true });
    await dropLockTable(database, isolation);
  }
}

const runs = startOnEachDatabase(runCluster);

describeEachDatabase('Three app instances with one @Cron job guarded by @WithLock', (database) => {
  it(`run each tick exactly once across the instances, over ${SECONDS} seconds`, async () => {
    const { ticks, firstFull, lastFull, exits } = await runs.get(database.kind)!;
    for (const exit of exits) {
      // Nest re-raises the signal once it has shut down; the cron library may warn on stderr about late timers.
      expect({ signal: exit.signal, errors: exit.stderr.split('\n').filter((line) => line && !line.startsWith('[Cron]')) }).toEqual({
        signal: 'SIGTERM',
        errors: [],
      });
    }
    expect(lastFull - firstFull + 1).toBeGreaterThanOrEqual(SECONDS);
    const ranTwice = [...ticks].filter(([, instances]) => instances.length > 1);
    expect(ranTwice).toEqual([]);
    const seconds = Array.from({ length: lastFull - firstFull + 1 }, (_, index) => firstFull + index);
    expect(seconds.filter((second) => !ticks.has(second))).toEqual([]);
  });
});
