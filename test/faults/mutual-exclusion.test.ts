import { createLockApp, dropLockTable } from '../support/lock-app';
import { runCounterProcesses, strictlyIncreasing } from '../support/counter-processes';
import { describeEachDatabase, uniqueName } from '../support/test-databases';

const PROCESSES = 8;
const NAMES = ['ledger-a', 'ledger-b'];
// A short variant for `npm test`: `npm run soak` runs the same fenced sections for minutes, with faults.
const ITERATIONS = 100;

describeEachDatabase('Mutual exclusion under load', (database) => {
  const isolation = uniqueName('exclusion');

  beforeAll(async () => {
    await (await createLockApp(database, isolation)).close();
  });
  afterAll(() => dropLockTable(database, isolation));

  it(`keeps ${PROCESSES} processes × ${NAMES.length} names × ${ITERATIONS} read-pause-write counters exact, fenced in order`, async () => {
    const outcome = await runCounterProcesses(database, isolation, { processes: PROCESSES, lockNames: NAMES, iterations: ITERATIONS });
    for (const finished of outcome.processes) expect(finished).toMatchObject({ code: 0, stderr: '' });
    for (const name of NAMES) {
      expect(outcome.totals[name]).toBe(PROCESSES * ITERATIONS);
      expect(outcome.tokens[name]).toHaveLength(PROCESSES * ITERATIONS);
      expect(strictlyIncreasing(outcome.tokens[name])).toBe(true);
    }
  }, 300_000);
});
