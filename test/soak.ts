/**
 * `npm run soak`: minutes of load with faults, on every database that answers. Worker processes
 * (some with clocks an hour off) loop over fenced read-modify-write sections on a few lock names,
 * some freeze past their lease, while the soak kills workers with SIGKILL, kills their database
 * connections, and restarts PostgreSQL. Then the same load on a PostgreSQL primary of the soak's own,
 * failed over again and again to a new standby, synchronous and asynchronous in turn. A violation is
 * a sign of two holders at once: a write the fenced resource turned away although its holder had not
 * been told it lost the lock (after a failover to an asynchronous standby, which loses the last
 * grants, that is expected, and fenced), or a log out of sequence. At the end it prints a table, and
 * fails if there was any. SOAK_SECONDS sets the time per database (default 60);
 * SOAK_DATABASES (e.g. "sqlite,postgres,failover") picks databases (default: all).
 * It restarts the local PostgreSQL server: run it when nothing else needs that server.
 */
import { execSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { FencedStore } from './support/fenced-store';
import { createLockApp, dropLockTable } from './support/lock-app';
import { postgresPrograms } from './support/postgres-server';
import { ReplicatedPostgres } from './support/replicated-postgres';
import { addStats, emptyStats, SoakInstance } from './support/soak-instance';
import { POSTGRES_URL, testDatabases, TestDatabase, uniqueName } from './support/test-databases';
import type { SoakWorkerSettings, SoakWorkerStats } from './workers/soak-worker';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const DATABASES = process.env.SOAK_DATABASES?.split(',');
const WORKERS = 6;
const LOCK_NAMES = ['alpha', 'beta', 'gamma'];
const HOUR = 3600_000;
const FAULT_EVERY_MS = 4000;

type Fault = 'kill' | 'connections' | 'restart' | 'failover';

interface Summary {
  database: string;
  seconds: number;
  stats: SoakWorkerStats;
  faults: Record<Fault, number>;
  writes: number;
  violations: string[];
}

/** How a soak makes things go wrong, round after round. */
interface FaultPlan {
  /** Injects the fault of `round` and says which it was; `halfway`: half of the soak's time has passed. */
  inject(round: number, halfway: boolean, instances: SoakInstance[]): Promise<Fault>;
  /** Of `heldTwice` writes turned away while their holder believed it held the lock, those no fault explains. */
  unexplained(heldTwice: number): number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Kills the database connections the workers hold, as a server under pressure or a failover would. */
async function killConnections(database: TestDatabase, table: string): Promise<void> {
  if (database.kind !== 'postgres') return;
  const client = new Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    await client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`,
      [table],
    );
  } finally {
    await client.end();
  }
}

function restartPostgres(): void {
  execSync('pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main restart -m fast', { stdio: 'ignore' });
}

/** Kills workers, kills their connections (PostgreSQL) and restarts PostgreSQL once, halfway. */
function serverFaults(database: TestDatabase, table: string): FaultPlan {
  const schedule: Fault[] = database.kind === 'postgres' ? ['kill', 'connections', 'kill', 'connections'] : ['kill'];
  let restarted = false;
  return {
    async inject(round, halfway, instances) {
      const fault: Fault = database.kind === 'postgres' && halfway && !restarted ? 'restart' : schedule[round % schedule.length];
      if (fault === 'kill') await instances[round % WORKERS].kill();
      else if (fault === 'connections') await killConnections(database, table);
      else {
        restartPostgres();
        restarted = true;
      }
      return fault;
    },
    unexplained: (heldTwice) => heldTwice,
  };
}

/**
 * Fails `cluster` over to a new standby each round, synchronous and asynchronous in turn (replication
 * cut a second before the kill). Writes turned away from holders that believed they held the lock are
 * explained from an asynchronous failover until the next failover: the grants it lost.
 */
function failovers(cluster: ReplicatedPostgres): FaultPlan {
  const heldTwice = (instances: SoakInstance[]) => instances.reduce((sum, instance) => sum + instance.stats.heldTwice, 0);
  let explained = 0;
  /** The count when the last failover was to an asynchronous standby. */
  let sinceAsynchronous: number | undefined;
  return {
    async inject(round, _halfway, instances) {
      const synchronous = round % 2 === 0;
      await cluster.addStandby({ synchronous });
      if (!synchronous) {
        await cluster.cutReplication();
        await sleep(1000);
      }
      if (sinceAsynchronous !== undefined) explained += heldTwice(instances) - sinceAsynchronous;
      sinceAsynchronous = synchronous ? undefined : heldTwice(instances);
      cluster.killPrimary();
      await cluster.promoteStandby();
      cluster.moveService();
      return 'failover';
    },
    unexplained: (total) => total - explained - (sinceAsynchronous === undefined ? 0 : total - sinceAsynchronous),
  };
}

async function soak(database: TestDatabase, plan?: FaultPlan): Promise<Summary> {
  const table = uniqueName('soak');
  await (await createLockApp(database, table)).close();
  const resourceDirectory = mkdtempSync(join(tmpdir(), `${table}-`));
  const settings: SoakWorkerSettings = {
    dataSourceOptions: database.dataSourceOptions(table),
    tableName: table,
    lockNames: LOCK_NAMES,
    resourceDirectory,
    expires: 2,
    freezeChance: 0.003,
  };
  const instances = Array.from({ length: WORKERS }, (_, i) => new SoakInstance(settings, ((i % 3) - 1) * HOUR));
  const faults: Record<Fault, number> = { kill: 0, connections: 0, restart: 0, failover: 0 };
  const faultPlan = plan ?? serverFaults(database, table);
  const started = performance.now();
  try {
    for (let round = 0; performance.now() - started < SECONDS * 1000; round++) {
      await sleep(FAULT_EVERY_MS);
      const halfway = performance.now() - started >= (SECONDS * 1000) / 2;
      const fault = await faultPlan.inject(round, halfway, instances);
      faults[fault]++;
      console.log(`  ${database.label}: ${fault} at ${Math.round((performance.now() - started) / 1000)} s`);
    }
    const stats = emptyStats();
    const stopped = await Promise.allSettled(instances.map((instance) => instance.stop()));
    for (const outcome of stopped) {
      if (outcome.status === 'rejected') throw outcome.reason;
      addStats(stats, outcome.value);
    }
    const stores = LOCK_NAMES.map((name) => new FencedStore(resourceDirectory, name));
    const violations = stores.flatMap((store) => store.violations());
    const heldTwice = faultPlan.unexplained(stats.heldTwice);
    if (heldTwice > 0) violations.push(`${heldTwice} writes were turned away while their holder still believed it held the lock`);
    const writes = stores.reduce((sum, store) => sum + store.entries().length, 0);
    return { database: database.label, seconds: Math.round((performance.now() - started) / 1000), stats, faults, writes, violations };
  } finally {
    rmSync(resourceDirectory, { recursive: true, force: true });
    await dropLockTable(database, table);
  }
}

async function available(database: TestDatabase): Promise<boolean> {
  if (database.kind === 'sqlite') return true;
  const dataSource = new DataSource(database.dataSourceOptions(uniqueName('probe')));
  try {
    await dataSource.initialize();
  } catch {
    return false;
  }
  await dataSource.destroy();
  return true;
}

async function main(): Promise<void> {
  const summaries: Summary[] = [];
  for (const database of testDatabases.filter(({ kind }) => !DATABASES || DATABASES.includes(kind))) {
    if (!(await available(database))) {
      console.log(`${database.label}: not reachable, skipped`);
      continue;
    }
    console.log(`${database.label}: ${SECONDS} s with ${WORKERS} workers on ${LOCK_NAMES.length} names`);
    summaries.push(await soak(database));
  }
  if (!DATABASES || DATABASES.includes('failover')) {
    const programs = postgresPrograms();
    if (!programs) console.log(`PostgreSQL failing over: PostgreSQL's server programs are not installed, skipped`);
    else {
      const cluster = await ReplicatedPostgres.start(programs);
      try {
        const url = cluster.url;
        const database: TestDatabase = { label: 'PostgreSQL failing over', kind: 'postgres', available: true, dataSourceOptions: () => ({ type: 'postgres', url }) };
        console.log(`${database.label}: ${SECONDS} s with ${WORKERS} workers on ${LOCK_NAMES.length} names`);
        summaries.push(await soak(database, failovers(cluster)));
      } finally {
        await cluster.close();
      }
    }
  }
  const lines = [
    '| Database | Seconds | Sections written | Fenced off | Lost leases | Freezes | Workers killed | Connection kills | Server restarts | Failovers | Database errors | Wait timeouts | Violations |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...summaries.map(
      ({ database, seconds, stats, faults, writes, violations }) =>
        `| ${database} | ${seconds} | ${writes} | ${stats.fencedOff} | ${stats.lost} | ${stats.freezes} | ${faults.kill} | ${faults.connections} | ${faults.restart} | ${faults.failover} | ${stats.databaseErrors} | ${stats.timedOut} | ${violations.length} |`,
    ),
  ];
  console.log(`\n${lines.join('\n')}\n`);
  const violations = summaries.flatMap((summary) => summary.violations.map((violation) => `${summary.database}: ${violation}`));
  if (violations.length > 0) {
    console.error(`Violations:\n${violations.join('\n')}`);
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
