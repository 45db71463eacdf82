/**
 * An app instance in its own process that waits for a lock another process holds, and reports when
 * it started waiting and when it got the lock, by its own monotonic clock.
 */
import { LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface HandoffWaiterSettings extends WorkerDatabase {
  lockName: string;
  wait: number;
  pollInterval: number;
}

export interface HandoffWaiterReport {
  waitStartedAt: number;
  acquiredAt: number;
  fencingToken: number;
}

async function main(settings: HandoffWaiterSettings): Promise<void> {
  const app = await createWorkerApp(settings, { lockOptions: { pollInterval: settings.pollInterval } });
  const locks = app.get(LockService);
  const waitStartedAt = performance.now();
  const lock = await locks.getLock(settings.lockName, { wait: settings.wait });
  const report: HandoffWaiterReport = { waitStartedAt, acquiredAt: performance.now(), fencingToken: lock.fencingToken };
  await locks.unlock(lock);
  await app.close();
  process.stdout.write(JSON.stringify(report));
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
