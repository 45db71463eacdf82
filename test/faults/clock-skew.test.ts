import type { ProbeReport, ProbeSettings } from '../workers/probe-worker';
import { createLockApp, dropLockTable, LockApp, sleep } from '../support/lock-app';
import { compiledScript, runScript } from '../support/processes';
import { describeEachDatabase, uniqueName } from '../support/test-databases';

const HOUR = 3600_000;
const SKEWS = [-HOUR, 0, HOUR];
/** Long enough to outlast the instances' start-up on a busy machine. */
const LEASE = 8;

describeEachDatabase('Instances with skewed clocks', (database) => {
  const isolation = uniqueName('skew');
  let app: LockApp;

  beforeAll(async () => {
    app = await createLockApp(database, isolation);
  });
  afterAll(async () => {
    await app?.close();
    await dropLockTable(database, isolation);
  });

  function probe(skewMs: number, settings: Omit<ProbeSettings, 'dataSourceOptions' | 'tableName'>): Promise<ProbeReport> {
    const full: ProbeSettings = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation, ...settings };
    return runScript('workers/probe-worker.ts', [JSON.stringify(full)], {
      execArgv: ['-r', compiledScript('workers/skewed-clock.ts')],
      env: { CLOCK_SKEW_MS: String(skewMs) },
    }).then((finished) => {
      expect(finished).toMatchObject({ code: 0, stderr: '' });
      return JSON.parse(finished.stdout);
    });
  }

  it('agree on every lock’s state, whoever took it', async () => {
    await app.locks.getLock('shared', { expires: LEASE });
    await app.locks.getLock('forever', { expires: 0 });
    const names = ['shared', 'forever', ...SKEWS.map((skew) => `own${skew}`)];
    // Each instance takes a lock of its own with its clock, then looks at all of them.
    const taking = await Promise.all(SKEWS.map((skew) => probe(skew, { names: [], take: { name: `own${skew}`, expires: LEASE } })));
    taking.forEach((report, i) => {
      expect(report.clockOffByMs / HOUR).toBeCloseTo(SKEWS[i] / HOUR, 1);
      expect(report.taken!.expired).toBe(false);
      expect(report.taken!.expiresSeconds).toBeGreaterThan(LEASE - 1);
    });
    const views = await Promise.all(SKEWS.map((skew) => probe(skew, { names })));
    for (const { views: seen } of views) {
      for (const name of names) {
        expect(seen[name]).toMatchObject({ locked: true, free: false, expired: false });
        if (name !== 'forever') expect(seen[name].expiresSeconds).toBeGreaterThan(0);
        if (name !== 'forever') expect(seen[name].expiresSeconds).toBeLessThanOrEqual(LEASE);
      }
      expect(seen.forever.expiresSeconds).toBeNull();
    }
    await sleep(LEASE * 1000);
    // One at a time: each probe takes the free locks for a millisecond to show they are free.
    for (const skew of SKEWS) {
      const { views: seen } = await probe(skew, { names });
      for (const name of names) {
        if (name === 'forever') expect(seen[name]).toMatchObject({ locked: true, free: false });
        else expect(seen[name]).toMatchObject({ locked: false, free: true });
      }
    }
  });
});
