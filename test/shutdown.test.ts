import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ShutdownWorkerSettings } from './workers/shutdown-worker';
import { createLockApp, dropLockTable, LockApp } from './support/lock-app';
import { ScriptProcess } from './support/processes';
import { describeEachDatabase, uniqueName } from './support/test-databases';

describeEachDatabase('An app stopped by SIGTERM while a @WithLock job runs', (database) => {
  const isolation = uniqueName('sigterm');
  const workLog = join(tmpdir(), `${isolation}.work`);
  let probe: LockApp;

  beforeAll(async () => {
    probe = await createLockApp(database, isolation);
  });
  afterAll(async () => {
    await probe?.close();
    rmSync(workLog, { force: true });
    await dropLockTable(database, isolation);
  });

  it('lets the job finish under its lock, then releases it and the managers’ locks, and exits', async () => {
    const settings: ShutdownWorkerSettings = { dataSourceOptions: database.dataSourceOptions(isolation), tableName: isolation, workLog };
    const worker = new ScriptProcess('workers/shutdown-worker.ts', [JSON.stringify(settings)]);
    await Promise.all([worker.line(/^started$/), worker.line(/^ready$/)]);
    expect(await probe.locks.isLocked('managed')).toBe(true);
    worker.kill('SIGTERM');
    await worker.line(/Shutting down: waiting for the work holding "report" to finish/);
    // The job is still running: it keeps its lock, renewed past its one-second lease, until it ends.
    expect(await probe.locks.isLocked('report')).toBe(true);
    expect(existsSync(workLog)).toBe(false);
    const finished = await worker.finished;
    expect({ signal: finished.signal, stderr: finished.stderr }).toEqual({ signal: 'SIGTERM', stderr: '' });
    expect(readFileSync(workLog, 'utf8')).toBe('finished\n');
    expect(await probe.locks.isLocked('report')).toBe(false);
    expect(await probe.locks.isLocked('managed')).toBe(false);
    // A lock from getLock belongs to its caller and outlives the process, as in django-lockmgr.
    expect(await probe.locks.isLocked('kept')).toBe(true);
  });
});
