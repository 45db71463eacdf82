import fc from 'fast-check';
import { createLockApp, dropLockTable, LockApp } from '../support/lock-app';
import { assertProperty, PropertyBudget, propertyTimeout } from '../support/property-runs';
import { describeEachDatabase, uniqueName } from '../support/test-databases';
import { CLIENTS, operation } from './lock-operations';
import { LockScenario } from './lock-scenario';

const BUDGET: PropertyBudget = { runs: 20, seconds: 12 };

describeEachDatabase('Lock operations of several instances, against a model of the lock table', (database) => {
  const isolation = uniqueName('model');
  const apps: LockApp[] = [];
  let cases = 0;

  beforeAll(async () => {
    for (let i = 0; i < CLIENTS; i++) apps.push(await createLockApp(database, isolation, { pollInterval: 0.2 }));
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await dropLockTable(database, isolation);
  });

  it(
    'never grant a held lock, keep fencing tokens rising, and agree with the model after every step',
    async () => {
      const property = fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 14 }), fc.scheduler(), async (operations, scheduler) => {
        const scenario = new LockScenario(apps, isolation, `c${++cases}_`, scheduler);
        try {
          for (const step of operations) {
            await scenario.run(step);
            await scenario.checkTable(0, `the table after ${JSON.stringify(step)}`);
          }
          await scenario.finish();
        } catch (error) {
          await scenario.abandon();
          throw error;
        }
      });
      await assertProperty(property, BUDGET);
    },
    propertyTimeout(BUDGET),
  );
});
