import { createLockApp, dropLockTable } from './support/lock-app';
import { runCounterProcesses, strictlyIncreasing } from './support/counter-processes';
import { describeEachDatabase, uniqueName } from './support/test-databases';

const PROCESSES = 4;
const ITERATIONS = 25;

describeEachDatabase('Several processes contending on one name', (database) => {
  const isolation = uniqueName('processes');

  beforeAll(async () => {
    // Create the table once, so the processes race on the locks, not on the schema.
    await (await createLockApp(database, isolation)).close();
  });
  afterAll(() => dropLockTable(database, isolation));

  it('keep a read-modify-write counter exact, with fencing tokens growing in order of the writes', async () => {
    const outcome = await runCounterProcesses(database, isolation, { processes: PROCESSES, lockNames: ['counter'], iterations: ITERATIONS });
    for (const finished of outcome.processes) expect(finished).toMatchObject({ code: 0, stderr: '' });
    expect(outcome.totals).toEqual({ counter: PROCESSES * ITERATIONS });
    expect(outcome.tokens.counter).toHaveLength(PROCESSES * ITERATIONS);
    expect(strictlyIncreasing(outcome.tokens.counter)).toBe(true);
  });
});
