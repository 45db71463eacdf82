/**
 * `npm run bench`: measures nestjs-lockmgr against the limit (the same statements through `pg`
 * alone) and its peers, side by side in one run, and prints one table of ratios (also written to
 * bench/results.md). Ratios, not absolute rates, are what hold on a noisy machine.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { BenchDatabase, createBenchApp, dropBenchTables, POSTGRES_URL, removeSqliteFile, usesTable, WAITS_APPLICATION_NAME } from './bench-app';
import {
  cleanupContender,
  Contender,
  decoratorContenders,
  LIMIT,
  limitContender,
  lockServiceContender,
  naivePortContender,
  redlockContender,
} from './contenders';
import { designs } from './designs';
import { ContendedRun, contendedReports, handoffFloors, handoffLatencies } from './process-measures';
import { format, rate, row, table, times } from './results-table';
import { mean, measureInSlices, median, percentile, rateJustBefore } from './slices';
import { WorkerProcess } from './worker-process';

const SLICES = { rounds: Number(process.env.BENCH_ROUNDS ?? 12), sliceMs: 300 };
const HANDOFF_SAMPLES = { notify: 200, polling: 60 };
const CONTENDED: ContendedRun = { processes: 8, warmUpMs: 1000, durationMs: 5000 };
const CONTENDED_RUNS = 5;
const LIVE_LOCKS = 100_000;
const WAITS = 1000;
const CLEANUP = { concurrency: 16, everyMs: 50, liveLocks: 10_000 };

const quantiles = (samples: number[]) => `${format(percentile(samples, 0.5), 2)} ms / ${format(percentile(samples, 0.99), 2)} ms`;

const LOCK_SERVICE = 'LockService, PostgreSQL';
const LOCK_SERVICE_QUIET = 'LockService, PostgreSQL, NOTIFY off';
const LOCK_SERVICE_MARIADB = 'LockService, MariaDB';
/** Without the look-up of a waiting app that each release makes. */
const LOCK_SERVICE_MARIADB_QUIET = 'LockService, MariaDB, notify off';
/** What an app behind a connection pooler runs: every statement parsed and planned afresh. */
const LOCK_SERVICE_UNNAMED = 'LockService, PostgreSQL, unnamed statements (as behind a pooler)';

/** Uncontended acquire+release pairs per second at one concurrency, every contender side by side. */
async function uncontended(concurrency: number): Promise<void> {
  console.log(`Uncontended pairs, concurrency ${concurrency}`);
  const contenders: Contender[] = [
    await limitContender(concurrency),
    await lockServiceContender(LOCK_SERVICE, 'postgres', 'bench_lock', concurrency),
    await lockServiceContender(LOCK_SERVICE_QUIET, 'postgres', 'bench_quiet_lock', concurrency, { notify: false }),
    await lockServiceContender(LOCK_SERVICE_UNNAMED, 'postgres', 'bench_unnamed_lock', concurrency, { preparedStatements: false }),
    await naivePortContender(concurrency),
    await lockServiceContender('LockService, SQLite', 'sqlite', 'bench_lock', concurrency),
    await lockServiceContender(LOCK_SERVICE_MARIADB, 'mariadb', 'bench_lock', concurrency),
    await lockServiceContender(LOCK_SERVICE_MARIADB_QUIET, 'mariadb', 'bench_quiet_lock', concurrency, { notify: false }),
    await redlockContender(),
  ];
  try {
    const rates = await measureInSlices(contenders, concurrency, SLICES);
    const limit = rates.get(LIMIT)!;
    const ours = rates.get(LOCK_SERVICE)!;
    for (const { label } of contenders) {
      const value = rates.get(label)!;
      if (label === LOCK_SERVICE) row(`c=${concurrency}: ${label}`, rate(value), `${times(value / limit)} limit`, '≥ 0.95 × limit', value / limit >= 0.95);
      else if (label === LOCK_SERVICE_QUIET) row(`c=${concurrency}: ${label}`, rate(value), `NOTIFY on = ${times(ours / value)} off`, concurrency === 16 ? '≥ 0.9' : '', concurrency === 16 ? ours / value >= 0.9 : undefined);
      else if (label === LOCK_SERVICE_MARIADB_QUIET) {
        row(`c=${concurrency}: ${label}`, rate(value), `notify on = ${times(rates.get(LOCK_SERVICE_MARIADB)! / value)} off`);
      } else if (label === LOCK_SERVICE_UNNAMED) row(`c=${concurrency}: ${label}`, rate(value), `prepared = ${times(ours / value)} unnamed`);
      else if (label.startsWith('naive')) row(`c=${concurrency}: ${label}`, rate(value), `LockService = ${times(ours / value)} naive`, '≥ 1.6', ours / value >= 1.6);
      else if (label === LIMIT) row(`c=${concurrency}: ${label}`, rate(value), '1.00 × limit');
      else row(`c=${concurrency}: ${label}`, rate(value), `${times(value / limit)} limit`);
    }
  } finally {
    for (const contender of contenders) await contender.close();
    removeSqliteFile();
  }
}

/** Release in one process, acquisition in another: how long the lock takes to change hands. */
async function handoff(database: BenchDatabase, notify: boolean, samples: number): Promise<number[]> {
  const [latencies] = await handoffLatencies('handoff-worker.js', [database, usesTable(database, 'bench_handoff_lock'), notify ? 'notify' : 'polling'], samples);
  return latencies;
}

/** What one run of the contended processes did: critical sections per second, and how they were shared. */
interface ContendedFigures {
  sections: number;
  /** The limit's c=1 pairs per second, measured just before the run. */
  limitOne: number;
  /** Each process's sections against an equal share of them all. */
  shares: number[];
  /** Every wait for the lock, in ms. */
  waits: number[];
  /** Each process's mean wait, in ms. */
  meanWaits: number[];
  /** Every release's round trip, in ms: the next holder has the lock by the time it ends. */
  releases: number[];
}

/**
 * Several processes looping acquire → release on one name, `runs` times: critical sections per second
 * and their fairness. The limit at c=1 is measured again before each run, so that each run's ratio
 * holds even when the machine's speed drifts during the benchmark.
 */
async function contended(runs: number): Promise<ContendedFigures[]> {
  const table = usesTable('postgres', 'bench_contended_lock');
  const figures: ContendedFigures[] = [];
  for (let run = 0; run < runs; run++) {
    const limit = await limitContender(1);
    const limitOne = await rateJustBefore(limit, SLICES).finally(() => limit.close());
    const [done] = await contendedReports<{ waits: number[]; releases: number[] }>('contended-worker.js', [table], CONTENDED);
    const total = done.reduce((sum, { waits }) => sum + waits.length, 0);
    figures.push({
      sections: total / (CONTENDED.durationMs / 1000),
      limitOne,
      shares: done.map(({ waits }) => waits.length / (total / CONTENDED.processes)),
      waits: done.flatMap(({ waits }) => waits),
      meanWaits: done.map(({ waits }) => mean(waits)),
      releases: done.flatMap(({ releases }) => releases),
    });
  }
  return figures;
}

/** A `@WithLock` method against the `withLock` call it makes: what the decorator adds. */
async function decorator(concurrency: number): Promise<{ decorated: number; direct: number }> {
  const [decorated, direct] = await decoratorContenders(concurrency);
  try {
    const rates = await measureInSlices([decorated, direct], concurrency, SLICES);
    return { decorated: rates.get(decorated.label)!, direct: rates.get(direct.label)! };
  } finally {
    await decorated.close();
  }
}

/** Uncontended pairs per second on a table holding many live locks, against an empty table. */
async function grownTable(): Promise<{ grown: number; empty: number }> {
  const concurrency = 16;
  const grown = await lockServiceContender(`with ${format(LIVE_LOCKS)} live locks`, 'postgres', 'bench_grown_lock', concurrency);
  const empty = await lockServiceContender('empty table', 'postgres', 'bench_empty_lock', concurrency);
  const client = new Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(`DELETE FROM bench_grown_lock`);
    await client.query(
      // With tokens of their own: a row without one has the trigger take an advisory lock to draw it, and
      // one transaction cannot hold a lock per row of so many.
      `INSERT INTO bench_grown_lock (name, owner, locked_by, lock_process, locked_until, created_at, updated_at, fencing_token)
       SELECT 'live-' || i, gen_random_uuid()::text, 'bench', 0, clock_timestamp() + interval '1 hour', now(), now(), -i
       FROM generate_series(1, $1::int) AS i`,
      [LIVE_LOCKS],
    );
    await client.query('VACUUM ANALYZE bench_grown_lock');
    await client.query('VACUUM ANALYZE bench_empty_lock');
    const rates = await measureInSlices([grown, empty], concurrency, SLICES);
    return { grown: rates.get(grown.label)!, empty: rates.get(empty.label)! };
  } finally {
    await client.query(`DELETE FROM bench_grown_lock`);
    await client.end();
    await grown.close();
    await empty.close();
  }
}

/**
 * Pairs per second on MariaDB while the clean-up runs often (every 50 ms, not once a minute) and finds
 * expired rows among many live ones, against no clean-up: with the index on locked_until, and without it.
 */
async function cleanupCost(): Promise<{ none: number; indexed: number; unindexed: number }> {
  const { concurrency, everyMs, liveLocks } = CLEANUP;
  const none = await cleanupContender('no clean-up', 'bench_cleanup_none_lock', concurrency, { liveLocks });
  const indexed = await cleanupContender('clean-up', 'bench_cleanup_lock', concurrency, { liveLocks, cleanupEveryMs: everyMs });
  const unindexed = await cleanupContender('clean-up, no index', 'bench_cleanup_unindexed_lock', concurrency, {
    liveLocks,
    cleanupEveryMs: everyMs,
    withoutIndex: true,
  });
  const contenders = [none, indexed, unindexed];
  try {
    const rates = await measureInSlices(contenders, concurrency, SLICES);
    return { none: rates.get(none.label)!, indexed: rates.get(indexed.label)!, unindexed: rates.get(unindexed.label)! };
  } finally {
    for (const contender of contenders) await contender.close();
  }
}

/** Many concurrent waits in one process: memory and connections they use. */
async function manyWaits(): Promise<{ growthMb: number; listeners: number; poolConnections: number; acquired: number }> {
  const table = 'bench_waits_lock';
  const holder = await createBenchApp('postgres', { tableName: table });
  const names = Array.from({ length: WAITS }, (_, i) => `wait-${i}`);
  const waiter = new WorkerProcess('waits-worker.js', [table], ['--expose-gc']);
  const client = new Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await waiter.next();
    const { locks } = await holder.locks.setLock(names, { timeout: 0 });
    await waiter.request({ type: 'start', names });
    for (;;) {
      const { rows: flagged } = await client.query(`SELECT count(*)::int AS count FROM ${table} WHERE waiting`);
      if (flagged[0].count === WAITS) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const { growth } = await waiter.request<{ growth: number }>({ type: 'measure' });
    const { rows: connections } = await client.query(
      `SELECT count(*) FILTER (WHERE application_name = $2 AND query = $1)::int AS listeners,
              count(*) FILTER (WHERE application_name = $3)::int AS pool
       FROM pg_stat_activity`,
      [`LISTEN "${table}"`, `${WAITS_APPLICATION_NAME} (nestjs-lockmgr listener)`, `${WAITS_APPLICATION_NAME} (nestjs-lockmgr)`],
    );
    await Promise.all(locks.map((lock) => holder.locks.unlock(lock)));
    const { acquired } = await waiter.request<{ acquired: number }>({ type: 'finish' });
    return { growthMb: growth / 2 ** 20, listeners: connections[0].listeners, poolConnections: connections[0].pool, acquired };
  } finally {
    await client.end();
    await waiter.stop();
    await holder.close();
  }
}

/** The sections, in order; `npm run bench -- handoff contended` runs only those named. */
const SECTIONS = ['uncontended', 'handoff', 'contended', 'designs', 'decorator', 'table', 'cleanup', 'waits'] as const;

async function main(): Promise<void> {
  const chosen = process.argv.slice(2);
  const unknown = chosen.filter((name) => !SECTIONS.includes(name as never));
  if (unknown.length) throw new Error(`Unknown benchmark sections ${unknown.join(', ')}; choose from ${SECTIONS.join(', ')}.`);
  const runs = (section: (typeof SECTIONS)[number]) => chosen.length === 0 || chosen.includes(section);
  const started = performance.now();
  if (runs('uncontended')) {
    await uncontended(1);
    await uncontended(16);
  }

  if (runs('handoff')) {
    console.log('Hand-off between processes');
    const notified = await handoff('postgres', true, HANDOFF_SAMPLES.notify);
    const [p50, p99] = [percentile(notified, 0.5), percentile(notified, 0.99)];
    row('hand-off with NOTIFY, p50 / p99', `${format(p50, 2)} ms / ${format(p99, 2)} ms`, '', '≤ 3 ms / ≤ 25 ms', p50 <= 3 && p99 <= 25);
    const pair = await lockServiceContender(LOCK_SERVICE, 'postgres', 'bench_lock', 1);
    const pairLatencyMs = 1000 / (await rateJustBefore(pair, SLICES).finally(() => pair.close()));
    row('hand-off p50 against one uncontended pair (c=1)', `pair ${format(pairLatencyMs, 2)} ms`, `${times(p50 / pairLatencyMs)} pair`, '≤ 2 ×', p50 <= 2 * pairLatencyMs);
    const floors = await handoffFloors('handoff-worker.js', ['postgres', usesTable('postgres', 'bench_handoff_lock'), 'notify'], HANDOFF_SAMPLES.notify);
    const [idlePair, notice] = [percentile(floors.pairs, 0.5), percentile(floors.notices, 0.5)];
    row('floor: one pair from idle processes, as the hand-off runs (p50 / p99)', quantiles(floors.pairs), `hand-off = ${times(p50 / idlePair)} pair from idle`);
    row('floor: a bare NOTIFY between idle processes, pg alone (p50 / p99)', quantiles(floors.notices), `hand-off = ${times(p50 / notice)} NOTIFY`);
    row('hand-off polling only, p50 / p99', quantiles(await handoff('postgres', false, HANDOFF_SAMPLES.polling)));
    for (const [database, label] of [['mariadb', 'MariaDB'], ['sqlite', 'SQLite']] as const) {
      row(`hand-off on ${label}, woken by the release, p50 / p99`, quantiles(await handoff(database, true, HANDOFF_SAMPLES.notify)));
      row(`hand-off on ${label}, polling only (notify: false), p50 / p99`, quantiles(await handoff(database, false, HANDOFF_SAMPLES.polling)));
    }
  }

  if (runs('contended')) {
    console.log('Contended');
    const results = await contended(CONTENDED_RUNS);
    const sections = median(results.map((result) => result.sections));
    const ratios = results.map((result) => result.sections / result.limitOne).sort((a, b) => a - b);
    const ratio = median(ratios);
    const runsShown = results.map((result) => `${format(result.sections)}/s against ${format(result.limitOne)}/s`).join(', ');
    row(
      `${CONTENDED.processes} processes on one name against the limit c=1 measured before each run, median of ${CONTENDED_RUNS} (runs: ${runsShown})`,
      `${rate(sections)} critical sections`,
      `${times(ratio)} limit c=1 (runs ${format(ratios[0], 2)}–${format(ratios[ratios.length - 1], 2)})`,
      '≥ 0.5',
      ratio >= 0.5,
    );
    const waits = results.flatMap((result) => result.waits);
    const meanWait = mean(waits);
    const worst = Math.max(...waits);
    row(`${CONTENDED.processes} processes on one name: worst wait against the mean wait`, `${format(worst, 2)} ms against ${format(meanWait, 2)} ms`, `${times(worst / meanWait)} mean`, '≤ 3 ×', worst <= 3 * meanWait);
    // Where the worst wait sits among the others, and how the waits of each process compare: a waiter
    // passed over again and again would show in its own mean, a stall of the machine only in the tail.
    row(`${CONTENDED.processes} processes on one name: p99 of the waits against the mean wait`, `${format(percentile(waits, 0.99), 2)} ms`, `${times(percentile(waits, 0.99) / meanWait)} mean`);
    const meanWaits = results.flatMap((result) => result.meanWaits.map((wait) => wait / median(result.meanWaits)));
    row(
      `${CONTENDED.processes} processes on one name: each process's mean wait against the median process's, every run`,
      `${format(Math.min(...meanWaits), 2)} to ${format(Math.max(...meanWaits), 2)} × median`,
    );
    const release = percentile(results.flatMap((result) => result.releases), 0.5);
    row(`${CONTENDED.processes} processes on one name: a release's round trip, p50, against a section (1 / the sections per second)`, `${format(release, 2)} ms against ${format(1000 / sections, 2)} ms`, `${times(release / (1000 / sections))} section`);
    const shares = results.flatMap((result) => result.shares);
    const [fewest, most] = [Math.min(...shares), Math.max(...shares)];
    row(
      `${CONTENDED.processes} processes on one name: each process's sections against an equal share, every run`,
      `${format(fewest, 2)} to ${format(most, 2)} × equal share`,
      '',
      'within ±25 %',
      fewest >= 0.75 && most <= 1.25,
    );
  }

  if (runs('designs')) {
    console.log('Fair hand-off designs, pg alone: A addressed notify, B hand-over in the release, C hand-over not waiting for the disk');
    await designs({ slices: SLICES, contended: CONTENDED, handoffSamples: HANDOFF_SAMPLES.notify });
  }

  if (runs('decorator')) {
    console.log('@WithLock');
    for (const concurrency of [1, 16]) {
      const { decorated, direct } = await decorator(concurrency);
      row(`c=${concurrency}: @WithLock no-op method against the same withLock call`, `${rate(decorated)} against ${rate(direct)}`, `${times(decorated / direct)} withLock`);
    }
  }

  if (runs('table')) {
    console.log('Table size');
    const { grown, empty } = await grownTable();
    row(`${format(LIVE_LOCKS)} live locks in the table (c=16)`, `${rate(grown)} against ${rate(empty)} empty`, `${times(grown / empty)} empty`, '≥ 0.9', grown / empty >= 0.9);
  }

  if (runs('cleanup')) {
    console.log('Clean-up on MariaDB');
    const { none, indexed, unindexed } = await cleanupCost();
    const { concurrency, everyMs, liveLocks } = CLEANUP;
    const setting = `c=${concurrency}, MariaDB, ${format(liveLocks)} live locks, every 10th pair leaves a lock to expire`;
    row(`${setting}: clean-up every ${everyMs} ms`, `${rate(indexed)} against ${rate(none)} without`, `${times(indexed / none)} without`);
    row(`${setting}: clean-up every ${everyMs} ms, no index on locked_until`, `${rate(unindexed)} against ${rate(none)} without`, `${times(unindexed / none)} without`);
  }

  if (runs('waits')) {
    console.log('Many waits');
    const waits = await manyWaits();
    row(
      `${format(WAITS)} concurrent waits on distinct names`,
      `RSS +${format(waits.growthMb, 1)} MB; ${waits.listeners} listening connection, ${waits.poolConnections} lock-pool connections; ${waits.acquired} acquired after release`,
      '',
      '< 50 MB, 1 listening connection',
      waits.growthMb < 50 && waits.listeners === 1 && waits.acquired === WAITS,
    );
  }

  const minutes = (performance.now() - started) / 60_000;
  const markdown = `${table()}\n\nMeasured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}, in ${format(minutes, 1)} minutes; c = concurrent callers in one process.\n`;
  console.log(`\n${markdown}`);
  if (chosen.length === 0) writeFileSync(join(__dirname, '..', '..', 'bench', 'results.md'), markdown);
}

main()
  .finally(dropBenchTables)
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
