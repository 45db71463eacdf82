import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { createLockTableMigration } from '../lib';
import type { BurstReport, InstanceCommand, InstanceReport, InstanceWorkerSettings } from './workers/instance-worker';
import { sleep, until } from './support/lock-app';
import { ScriptProcess } from './support/processes';
import { describeOnScratchPostgres } from './support/scratch-postgres';

/**
 * How many instances the proof starts: LOCKMGR_INSTANCES, 40 in `npm run soak`; 8 in `npm test`, where forty
 * Node processes would take two cores most of a minute just to start.
 */
const INSTANCES = Number(process.env.LOCKMGR_INSTANCES ?? 8);
const PERIOD_MS = 2000;
const TICKS = 4;
const BURST_CALLS = 20;
/** The role and database of the apps: not a superuser, so the connections PostgreSQL reserves for one stay free. */
const APP = 'app';
const LOCK_TABLE = 'lockmgr_lock';
const RUNS_TABLE = 'instance_runs';

/** What each connection of an instance is for, told by its application_name. */
type Role = 'app pool' | 'lock pool' | 'listener';
const ROLES: Role[] = ['app pool', 'lock pool', 'listener'];

function roleOf(applicationName: string): { instance: string; role: Role } {
  const [, instance, suffix] = /^(.*?)(?: \((nestjs-lockmgr(?: listener)?)\))?$/.exec(applicationName)!;
  return { instance, role: suffix === undefined ? 'app pool' : suffix === 'nestjs-lockmgr' ? 'lock pool' : 'listener' };
}

/** The peaks of one phase: of all connections to the server, and of each instance's, by role. */
interface Peaks {
  total: number;
  byInstance: Map<string, Record<Role, number>>;
}

/**
 * Counts the server's client connections every 50 ms, from the superuser connection that an operator's
 * psql would be (it is counted too), and keeps the peaks of each phase.
 */
class ConnectionWatch {
  readonly phases = new Map<string, Peaks>();
  private current: Peaks;
  private running = true;
  private readonly sampling: Promise<void>;

  constructor(
    private readonly client: Client,
    phase: string,
  ) {
    this.current = this.begin(phase);
    this.sampling = this.sample();
  }

  begin(phase: string): Peaks {
    this.current = { total: 0, byInstance: new Map() };
    this.phases.set(phase, this.current);
    return this.current;
  }

  /** The connections of each role that `instance` has now (a sample of the phase too). */
  async now(instance: string): Promise<Record<Role, number>> {
    return (await this.count()).get(instance) ?? { 'app pool': 0, 'lock pool': 0, listener: 0 };
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.sampling;
  }

  /** Counts the connections of each instance by role, and keeps the peaks of the current phase. */
  private async count(): Promise<Map<string, Record<Role, number>>> {
    const { rows } = await this.client.query<{ name: string; connections: number }>(
      `SELECT application_name AS name, count(*)::int AS connections FROM pg_stat_activity
       WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() GROUP BY 1`,
    );
    const counts = new Map<string, Record<Role, number>>();
    for (const { name, connections } of rows) {
      const { instance, role } = roleOf(name);
      if (!counts.has(instance)) counts.set(instance, { 'app pool': 0, 'lock pool': 0, listener: 0 });
      counts.get(instance)![role] += connections;
    }
    const peaks = this.current;
    let total = 1;
    for (const [instance, roles] of counts) {
      const peak = peaks.byInstance.get(instance) ?? { 'app pool': 0, 'lock pool': 0, listener: 0 };
      for (const role of ROLES) {
        peak[role] = Math.max(peak[role], roles[role]);
        total += roles[role];
      }
      peaks.byInstance.set(instance, peak);
    }
    peaks.total = Math.max(peaks.total, total);
    return counts;
  }

  private async sample(): Promise<void> {
    while (this.running) {
      await this.count();
      await sleep(50);
    }
  }

  /** The phases as a table: the most connections of each role any instance had, and the most in all. */
  table(instances: string[]): string {
    const rows = [...this.phases].map(([phase, { total, byInstance }]) => {
      const most = (role: Role) => Math.max(0, ...instances.map((instance) => byInstance.get(instance)?.[role] ?? 0));
      return `| ${phase} | ${ROLES.map(most).join(' | ')} | ${total} |`;
    });
    return ['| phase | app pool | lock pool | listener | all connections (with this one) |', '|---|---|---|---|---|', ...rows].join('\n');
  }
}

/** Forty Node processes starting at once on two busy cores starve each other (and their connection timeouts) for minutes. */
const STARTING_AT_ONCE = 4;

/**
 * Starts instances of an app, each its own process, on the scratch server as the role `app`, a few at a
 * time, and resolves with when each was ready (epoch ms). Each process goes into `started` as it is
 * spawned, so that the caller stops them whatever happens.
 */
async function startInstances(url: string, names: string[], schedule: (name: string) => string, started: ScriptProcess[]): Promise<number[]> {
  const readyAt: number[] = [];
  for (let first = 0; first < names.length; first += STARTING_AT_ONCE) {
    const batch = names.slice(first, first + STARTING_AT_ONCE).map((instance) => {
      const settings: InstanceWorkerSettings = {
        // Named, so that its connections and the lock module's are told apart.
        dataSourceOptions: { type: 'postgres', url, applicationName: instance },
        tableName: LOCK_TABLE,
        instance,
        schedule: schedule(instance),
        runsTable: RUNS_TABLE,
        // Every module option at its default; the clean-up task too, as in an app that imports ScheduleModule.
        lockOptions: { cleanupInterval: 60 },
      };
      const instanceProcess = new ScriptProcess('workers/instance-worker.ts', [JSON.stringify(settings)], { input: true });
      started.push(instanceProcess);
      return instanceProcess;
    });
    const ready = batch.map((instance) =>
      instance.line(/^ready \d+$/).then(
        (line) => Number(line.split(' ')[1]),
        async (error: Error) => {
          throw new Error(`${error.message}\n${(await instance.finished).stderr}`);
        },
      ),
    );
    readyAt.push(...(await Promise.all(ready)));
  }
  return readyAt;
}

async function command<T extends InstanceReport>(instance: ScriptProcess, order: InstanceCommand): Promise<T> {
  instance.send(order);
  return instance.nextEvent<T>();
}

/** Stops the instances and gives what each wrote on stderr, but for the cron library's warnings about late timers. */
async function stopInstances(instances: ScriptProcess[]): Promise<string[][]> {
  for (const instance of instances) instance.kill('SIGTERM');
  const exits = await Promise.all(instances.map((instance) => instance.finished));
  return exits.map((exit) => exit.stderr.split('\n').filter((line) => line && !line.startsWith('[Cron]')));
}

describeOnScratchPostgres('Instances on one PostgreSQL server of max_connections 100', { max_connections: 100 }, (server) => {
  let admin: Client;
  let appUrl: string;

  beforeAll(async () => {
    const setup = new Client({ connectionString: server().url() });
    await setup.connect();
    await setup.query(`CREATE ROLE ${APP} LOGIN`);
    await setup.query(`CREATE DATABASE ${APP} OWNER ${APP}`);
    await setup.end();
    // A superuser in the apps' database, as an operator's psql would be.
    admin = new Client({ connectionString: server().url(APP) });
    await admin.connect();
    appUrl = server().url(APP, APP);
    const dataSource = await new DataSource({ type: 'postgres', url: appUrl }).initialize();
    const queryRunner = dataSource.createQueryRunner();
    try {
      // Created once, so the instances race on the locks, not on the schema.
      await new (createLockTableMigration({ tableName: LOCK_TABLE }))().up(queryRunner);
      await queryRunner.query(`CREATE TABLE ${RUNS_TABLE} (instance text NOT NULL, clock bigint NOT NULL, fencing_token bigint NOT NULL)`);
    } finally {
      await queryRunner.release();
      await dataSource.destroy();
    }
  });
  afterAll(() => admin?.end());

  it('each instance holds at most one lock-pool connection, and a listener only while it waits and a while after', async () => {
    const settings = await admin.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', 'superuser_reserved_connections') ORDER BY name`,
    );
    expect(settings.rows).toEqual([
      { name: 'max_connections', setting: '100' },
      { name: 'superuser_reserved_connections', setting: '3' },
    ]);
    await admin.query(`TRUNCATE ${RUNS_TABLE}`);
    const watch = new ConnectionWatch(admin, 'start-up');
    // "busy" runs its job every 2 s; "quiet" has a job that does not come due during the test.
    const instances: ScriptProcess[] = [];
    let burst: BurstReport;
    let quietAtRest: Record<Role, number>;
    let errors: string[][];
    try {
      await startInstances(appUrl, ['busy', 'quiet'], (name) => (name === 'busy' ? '*/2 * * * * *' : '0 0 0 1 1 *'), instances);
      const [busy] = instances;
      const quietSince = performance.now();
      watch.begin('@Cron every 2 s, 3 ticks');
      await sleep(3 * PERIOD_MS);
      watch.begin(`burst of ${BURST_CALLS} getLock/unlock pairs`);
      burst = await command<BurstReport>(busy, { burst: BURST_CALLS, at: Date.now() });
      await sleep(200);
      watch.begin('a wait for a held lock');
      expect(await command(busy, { wait: 'contended' })).toEqual({ waiting: 'contended' });
      await until(async () => (await watch.now('busy')).listener === 1);
      expect(await command(busy, { endWait: 'contended' })).toEqual({ waitEnded: 'contended' });
      watch.begin('after the wait, until its listener closed');
      await until(async () => (await watch.now('busy')).listener === 0, 20_000);
      // The quiet instance's connections have had ten seconds of nothing to do.
      await sleep(11_000 - (performance.now() - quietSince));
      quietAtRest = await watch.now('quiet');
      watch.begin('quiet, 11 s after start-up');
      await sleep(200);
    } finally {
      await watch.stop();
      errors = await stopInstances(instances);
    }
    console.log(`The connections of an instance with a job every 2 s (the most seen of each kind):\n${watch.table(['busy'])}`);
    console.log(`The connections of an instance whose job does not come due:\n${watch.table(['quiet'])}`);

    expect(errors).toEqual([[], []]);
    expect(burst.failures).toEqual([]);
    const phases = [...watch.phases.values()];
    // The lock pool never holds more than its one connection; a burst queues on it.
    for (const { byInstance } of phases) for (const peaks of byInstance.values()) expect(peaks['lock pool']).toBeLessThanOrEqual(1);
    expect(watch.phases.get(`burst of ${BURST_CALLS} getLock/unlock pairs`)!.byInstance.get('busy')!['lock pool']).toBe(1);
    // No listener until a wait, one while it lasts.
    expect(phases.slice(0, 3).map(({ byInstance }) => byInstance.get('busy')?.listener ?? 0)).toEqual([0, 0, 0]);
    expect(watch.phases.get('a wait for a held lock')!.byInstance.get('busy')!.listener).toBe(1);
    // An instance with nothing to do keeps no connection of the lock module's.
    expect(quietAtRest).toMatchObject({ 'lock pool': 0, listener: 0 });
  }, 90_000);

  it(`${INSTANCES} instances with a @Cron job every 2 s and a burst of ${BURST_CALLS} lock calls at once: every tick runs once, and no connection is refused`, async () => {
    await admin.query(`TRUNCATE ${RUNS_TABLE}`);
    const startedAt = Date.now();
    const watch = new ConnectionWatch(admin, 'start-up');
    const names = Array.from({ length: INSTANCES }, (_, index) => `instance-${String(index).padStart(2, '0')}`);
    const instances: ScriptProcess[] = [];
    let readyAt: number[] = [];
    let ticks: number[] = [];
    let bursts: BurstReport[] = [];
    let errors: string[][];
    try {
      readyAt = await startInstances(appUrl, names, () => '*/2 * * * * *', instances);
      const firstTick = Math.ceil((Math.max(...readyAt) + 1) / PERIOD_MS) * PERIOD_MS;
      ticks = Array.from({ length: TICKS }, (_, index) => firstTick + index * PERIOD_MS);
      watch.begin(`${TICKS} ticks, and a burst in every instance at the second`);
      // Every instance bursts at the moment its cron job fires.
      const bursting = Promise.all(instances.map((instance) => command<BurstReport>(instance, { burst: BURST_CALLS, at: ticks[1] })));
      // Stopped between two ticks: one that fired during the shutdown would be skipped, and missing from the runs.
      await sleep(ticks.at(-1)! + PERIOD_MS / 2 - Date.now());
      bursts = await bursting;
    } finally {
      await watch.stop();
      errors = await stopInstances(instances);
    }
    const { rows } = await admin.query<{ tick: string; runs: number }>(
      `SELECT (clock / ${PERIOD_MS}) * ${PERIOD_MS} AS tick, count(*)::int AS runs FROM ${RUNS_TABLE} GROUP BY 1`,
    );
    const failures = bursts.flatMap((burst) => burst.failures);
    console.log(
      `${INSTANCES} instances, all ready ${Math.max(...readyAt) - startedAt} ms after the first was started; ` +
        `the longest burst took ${Math.max(...bursts.map((burst) => burst.milliseconds))} ms; ${failures.length} lock calls of the bursts failed:\n` +
        `${watch.table(names)}`,
    );

    expect(failures).toEqual([]);
    expect(errors).toEqual(names.map(() => []));
    const runsAt = new Map(rows.map((row) => [Number(row.tick), row.runs]));
    expect(ticks.map((tick) => [new Date(tick).toISOString(), runsAt.get(tick) ?? 0])).toEqual(ticks.map((tick) => [new Date(tick).toISOString(), 1]));
    // Each instance: one connection of the lock pool (the burst queued on it), no listener.
    const most = (role: Role) => Math.max(...[...watch.phases.values()].flatMap(({ byInstance }) => names.map((name) => byInstance.get(name)?.[role] ?? 0)));
    expect({ lock: most('lock pool'), listener: most('listener') }).toEqual({ lock: 1, listener: 0 });
  }, 60_000 + INSTANCES * 10_000);
});
