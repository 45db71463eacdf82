import fc from 'fast-check';
import { LockService } from '../../lib';
import { openDialect } from '../../lib/dialects/create-dialect';
import { LOCK_DIALECT, LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from '../../lib/lockmgr.constants';
import type { ResolvedLockMgrOptions } from '../../lib/lockmgr-options';
import { Fault, FaultyDialect } from '../support/faulty-dialect';
import { LibraryTimers } from '../support/library-timers';
import { createLockApp, dropLockTable, LockApp, lockTestingModule } from '../support/lock-app';
import { assertProperty, PropertyBudget, propertyTimeout } from '../support/property-runs';
import { describeEachDatabase, TestDatabase, uniqueName } from '../support/test-databases';
import type { DataSource } from 'typeorm';
import { FaultScenario } from './fault-scenario';
import { faultStep, plannedFault } from './fault-steps';

const BUDGET: PropertyBudget = { runs: 8, seconds: 15 };

/** An app whose dialect is wrapped in a `FaultyDialect`, as a test app overrides a provider. */
async function faultyApp(database: TestDatabase, isolation: string): Promise<{ locks: LockService; dialect: FaultyDialect; close: () => Promise<void> }> {
  let dialect!: FaultyDialect;
  const moduleRef = await lockTestingModule(database, isolation, { pollInterval: 0.2 })
    .overrideProvider(LOCK_DIALECT)
    .useFactory({
      inject: [LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS],
      factory: async (dataSource: DataSource, options: ResolvedLockMgrOptions) => (dialect = new FaultyDialect(await openDialect(dataSource, options))),
    })
    .compile();
  await moduleRef.init();
  return { locks: moduleRef.get(LockService), dialect, close: () => moduleRef.close() };
}

describeEachDatabase('Faults at any call of the dialect', (database) => {
  const isolation = uniqueName('faults');
  let observer: LockApp;
  let cases = 0;

  beforeAll(async () => {
    observer = await createLockApp(database, isolation);
  });
  afterAll(async () => {
    await observer?.close();
    await dropLockTable(database, isolation);
  });

  it(
    'leave one holder at most, no lock for a caller told it failed, holders told in time, and no timer running after close',
    async () => {
      const property = fc.asyncProperty(fc.array(faultStep, { minLength: 1, maxLength: 4 }), plannedFault, async (steps, planned) => {
        const timers = new LibraryTimers().start();
        const app = await faultyApp(database, isolation);
        const scenario = new FaultScenario(app.locks, app.dialect, observer, `f${++cases}_`, planned);
        try {
          app.dialect.arm(new Map<number, Fault>([[planned.call, planned.fault]]));
          for (const step of steps) await scenario.run(step);
        } finally {
          // Closed even when the clean-up fails: an app left open would outlive the suite.
          try {
            await scenario.finish();
          } finally {
            await app.close();
          }
        }
        const pending = timers.stillPending;
        timers.stop();
        if (pending.length > 0) throw new Error(`${pending.length} timer(s) of the library still pending after the app closed, set at:\n${pending[0]}`);
      });
      await assertProperty(property, BUDGET);
    },
    propertyTimeout(BUDGET),
  );
});
