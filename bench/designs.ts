/**
 * `npm run bench -- designs`: the designs of a fair one-wake-up hand-off in bench/design-lock.ts,
 * side by side in one run, each against one uncontended acquire+release pair of its own statements on
 * one connection (the limit at c=1), measured just before each figure it is compared with.
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { POSTGRES_URL } from './bench-app';
import type { Contender } from './contenders';
import { CREATE_TABLES, Design, DESIGNS, DesignLock, DROP_TABLES } from './design-lock';
import { contendedReports, ContendedRun, handoffLatencies } from './process-measures';
import { format, row, times } from './results-table';
import { median, percentile, rateJustBefore } from './slices';

/** Contended runs of each design. */
const RUNS = 5;
const WORKER = 'design-worker.js';

export interface DesignsSettings {
  slices: { rounds: number; sliceMs: number };
  contended: ContendedRun;
  handoffSamples: number;
}

/** What one process of a contended run answers. */
interface ProcessReport {
  sections: number;
  waitedMs: number;
  longestWaitMs: number;
  retries: number;
  timeouts: number;
}

interface RunFigures {
  sectionsPerSecond: number;
  /** The design's uncontended pairs per second at c=1, measured just before the run. */
  pairRate: number;
  /** The fewest and most sections of one process, as a fraction of an equal share. */
  fewestShare: number;
  mostShare: number;
  meanWaitMs: number;
  longestWaitMs: number;
  retries: number;
  timeouts: number;
}

function figures(reports: ProcessReport[], durationMs: number, pairRate: number): RunFigures {
  const sum = (pick: (report: ProcessReport) => number) => reports.reduce((total, report) => total + pick(report), 0);
  const sections = sum((report) => report.sections);
  const shares = reports.map((report) => report.sections / (sections / reports.length));
  return {
    sectionsPerSecond: sections / (durationMs / 1000),
    pairRate,
    fewestShare: Math.min(...shares),
    mostShare: Math.max(...shares),
    meanWaitMs: sum((report) => report.waitedMs) / sections,
    longestWaitMs: Math.max(...reports.map((report) => report.longestWaitMs)),
    retries: sum((report) => report.retries),
    timeouts: sum((report) => report.timeouts),
  };
}

/** The median of the runs, their spread and each run: `12 (10–14; 10, 12, 14)`. */
function spread(values: number[], show: (value: number) => string): string {
  return `${show(median(values))} (${show(Math.min(...values))}–${show(Math.max(...values))}; runs ${values.map((value) => show(value)).join(', ')})`;
}

/** One uncontended pair of a design: its attempt takes the free name, its release finds nobody to wake. */
function pairContender(client: Client, design: Design): Contender {
  const lock = new DesignLock(client, design);
  const name = `reference-${design}`;
  return {
    label: design,
    pair: async () => {
      const owner = randomUUID();
      if ((await lock.attempt(name, owner, null)).token === null) throw new Error(`Design ${design} failed to take ${name}.`);
      await lock.release(name, owner);
    },
    close: async () => undefined,
  };
}

/** The rows of one design: every figure also as a ratio to its own uncontended pair, measured just before it. */
function report(design: Design, runs: RunFigures[], handoff: number[], handoffPairRate: number, processes: number): void {
  const name = `design ${design}`;
  const of = (pick: (run: RunFigures) => number) => runs.map(pick);
  const share = (value: number) => format(value, 2);
  const pairMs = 1000 / median(of((run) => run.pairRate));
  const meanWaitMs = median(of((run) => run.meanWaitMs));
  const total = (pick: (run: RunFigures) => number) => of(pick).reduce((sum, value) => sum + value, 0);
  const [p50, p99] = [percentile(handoff, 0.5), percentile(handoff, 0.99)];
  row(`${name}: one uncontended pair, c=1, one connection (the limit c=1), before each run`, `${spread(of((run) => run.pairRate), format)} pairs/s`);
  row(
    `${name}: ${processes} processes on one name, critical sections/s, median of ${runs.length} (min–max; runs)`,
    spread(of((run) => run.sectionsPerSecond), format),
    `${spread(of((run) => run.sectionsPerSecond / run.pairRate), times)} limit c=1`,
  );
  row(`${name}: fewest sections of one process, × an equal share`, spread(of((run) => run.fewestShare), share));
  row(`${name}: most sections of one process, × an equal share`, spread(of((run) => run.mostShare), share));
  row(
    `${name}: longest wait against the mean wait`,
    spread(of((run) => run.longestWaitMs / run.meanWaitMs), times),
    `mean wait ${format(meanWaitMs, 1)} ms = ${times(meanWaitMs / pairMs)} pair`,
  );
  row(`${name}: waits ended by the 1 s safety timeout / attempts repeated at once, all runs`, `${total((run) => run.timeouts)} / ${total((run) => run.retries)}`);
  row(`${name}: hand-off between two processes, p50 / p99 of ${handoff.length}`, `${format(p50, 2)} ms / ${format(p99, 2)} ms`, `p50 = ${times((p50 * handoffPairRate) / 1000)} pair measured before it`);
}

export async function designs({ slices, contended, handoffSamples }: DesignsSettings): Promise<void> {
  const client = new Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    for (const statement of [...DROP_TABLES, ...CREATE_TABLES]) await client.query(statement);

    const pairs = new Map(DESIGNS.map((design) => [design, pairContender(client, design)]));
    const pairRate = (design: Design) => rateJustBefore(pairs.get(design)!, slices);
    const runs = new Map<Design, RunFigures[]>(DESIGNS.map((design) => [design, []]));
    // The designs take turns: A, B, C, A, B, C…
    for (let run = 0; run < RUNS; run++) {
      for (const design of DESIGNS) {
        const before = await pairRate(design);
        const [reports] = await contendedReports<ProcessReport>(WORKER, [POSTGRES_URL], contended, [{ design }]);
        runs.get(design)!.push(figures(reports, contended.durationMs, before));
      }
    }
    const handoffPairRates = new Map<Design, number>();
    for (const design of DESIGNS) handoffPairRates.set(design, await pairRate(design));
    const handoffs = await handoffLatencies(WORKER, [POSTGRES_URL], handoffSamples, DESIGNS.map((design) => ({ design })));
    DESIGNS.forEach((design, index) => report(design, runs.get(design)!, handoffs[index], handoffPairRates.get(design)!, contended.processes));
    const [a, b, c] = DESIGNS.map((design) => runs.get(design)!.map((run) => run.sectionsPerSecond));
    row('design B against A: critical sections/s of each pair of runs', spread(b.map((value, run) => value / a[run]), times));
    row('design C against B: critical sections/s of each pair of runs', spread(c.map((value, run) => value / b[run]), times));
  } finally {
    for (const statement of DROP_TABLES) await client.query(statement);
    await client.end();
  }
}
