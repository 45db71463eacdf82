import type { ProbeCommand, ProbeReport, ProbeSettings } from '../workers/probe-worker';
import { createLockApp, dropLockTable, LockApp, sleep } from '../support/lock-app';
import { compiledScript, ScriptProcess } from '../support/processes';
import { describeEachDatabase, uniqueName } from '../support/test-databases';

const HOUR = 3600_000;
const SKEWS = [-HOUR, 0, HOUR];
const LEASE = 3;

describeEachDatabase('Instances with skewed clocks', (database) => {
  const isolation = uniqueName('skew');
  let app: LockApp;
  let probes: ScriptProcess[];

  beforeAll(async () => {
    app = await createLockApp(database, isolation);
    const settings: ProbeSettings = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation };
    probes = SKEWS.map(
      (skew) =>
        new ScriptProcess('workers/probe-worker.ts', [JSON.stringify(settings)], {
          execArgv: ['-r', compiledScript('workers/skewed-clock.ts')],
          env: { CLOCK_SKEW_MS: String(skew) },
          input: true,
        }),
    );
    const ready = await Promise.all(probes.map((probe) => probe.nextEvent<{ clockOffByMs: number }>()));
    ready.forEach(({ clockOffByMs }, i) => expect(clockOffByMs / HOUR).toBeCloseTo(SKEWS[i] / HOUR, 1));
  });
  afterAll(async () => {
    for (const probe of probes ?? []) probe.send({ stop: true } satisfies ProbeCommand);
    await Promise.all((probes ?? []).map((probe) => probe.finished));
    await app?.close();
    await dropLockTable(database, isolation);
  });

  type Taken = Extract<ProbeReport, { taken: string }>;
  type Views = Extract<ProbeReport, { views: unknown }>;

  function take(probe: ScriptProcess, name: string): Promise<Taken> {
    probe.send({ take: name, expires: LEASE } satisfies ProbeCommand);
    return probe.nextEvent<Taken>();
  }

  async function look(probe: ScriptProcess, names: string[]): Promise<Views['views']> {
    probe.send({ look: names } satisfies ProbeCommand);
    return (await probe.nextEvent<Views>()).views;
  }

  it('agree on every lock’s state, whoever took it', async () => {
    await app.locks.getLock('shared', { expires: LEASE });
    await app.locks.getLock('forever', { expires: 0 });
    const names = ['shared', 'forever', ...SKEWS.map((skew) => `own${skew}`)];
    // Each instance takes a lock of its own with its clock.
    const taken = await Promise.all(probes.map((probe, i) => take(probe, `own${SKEWS[i]}`)));
    for (const lock of taken) {
      expect(lock.expired).toBe(false);
      expect(lock.expiresSeconds).toBeGreaterThan(LEASE - 1);
    }
    // Then each looks at all of them (one at a time: a look takes free locks for a millisecond).
    for (const probe of probes) {
      const views = await look(probe, names);
      for (const name of names) {
        expect(views[name]).toMatchObject({ locked: true, free: false, expired: false });
        if (name !== 'forever') expect(views[name].expiresSeconds).toBeGreaterThan(0);
        if (name !== 'forever') expect(views[name].expiresSeconds).toBeLessThanOrEqual(LEASE);
      }
      expect(views.forever.expiresSeconds).toBeNull();
    }
    await sleep(LEASE * 1000);
    for (const probe of probes) {
      const views = await look(probe, names);
      for (const name of names) {
        if (name === 'forever') expect(views[name]).toMatchObject({ locked: true, free: false });
        else expect(views[name]).toMatchObject({ locked: false, free: true });
      }
    }
  });
});
