import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CounterWorkerSettings } from './workers/counter-worker';
import { createLockApp, dropLockTable } from './support/lock-app';
import { runScript } from './support/processes';
import { describeEachDatabase, uniqueName } from './support/test-databases';

const PROCESSES = 4;
const ITERATIONS = 25;

describeEachDatabase('Several processes contending on one name', (database) => {
  const isolation = uniqueName('processes');
  const counterFile = join(tmpdir(), `${isolation}.counter`);
  const tokenLog = join(tmpdir(), `${isolation}.tokens`);

  beforeAll(async () => {
    // Create the table once, so the processes race on the locks, not on the schema.
    await (await createLockApp(database, isolation)).close();
  });
  afterAll(async () => {
    rmSync(counterFile, { force: true });
    rmSync(tokenLog, { force: true });
    await dropLockTable(database, isolation);
  });

  it('keep a read-modify-write counter exact, with fencing tokens growing in order of the writes', async () => {
    writeFileSync(counterFile, '0');
    writeFileSync(tokenLog, '');
    const settings: CounterWorkerSettings = {
      dataSourceOptions: database.dataSourceOptions(isolation),
      tableName: isolation,
      lockName: 'counter',
      iterations: ITERATIONS,
      counterFile,
      tokenLog,
    };
    const results = await Promise.all(
      Array.from({ length: PROCESSES }, () => runScript('workers/counter-worker.ts', [JSON.stringify(settings)])),
    );
    for (const result of results) expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(Number(readFileSync(counterFile, 'utf8'))).toBe(PROCESSES * ITERATIONS);
    const tokens = readFileSync(tokenLog, 'utf8').trim().split('\n').map(Number);
    expect(tokens).toHaveLength(PROCESSES * ITERATIONS);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
  });
});
