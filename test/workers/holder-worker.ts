/**
 * An app instance in its own process that takes a lock through a manager (renewing itself) and
 * reports it. It then either works forever, to be killed in the middle of its critical section, or
 * freezes its event loop for `freezeSeconds` (as a long synchronous computation or a stalled VM
 * would), and reports what it finds when it wakes before releasing.
 */
import { LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface HolderWorkerSettings extends WorkerDatabase {
  lockName: string;
  expires: number;
  freezeSeconds?: number;
}

export type HolderEvent =
  | { event: 'held'; fencingToken: number }
  | { event: 'woke'; aborted: boolean; reason: string | null; stillHolds: boolean }
  | { event: 'released' };

const report = (event: HolderEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function main(settings: HolderWorkerSettings): Promise<void> {
  const app = await createWorkerApp(settings);
  const manager = await app.get(LockService).manager(settings.lockName, { expires: settings.expires });
  report({ event: 'held', fencingToken: manager.fencingToken });
  if (settings.freezeSeconds === undefined) {
    // Work that never ends (a timer keeps the process alive until it is killed).
    setInterval(() => undefined, 60_000);
    return;
  }
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, settings.freezeSeconds * 1000);
  // Let the timers that came due during the freeze run, as they would on the next turn of the loop.
  await new Promise((resolve) => setTimeout(resolve, 50));
  report({
    event: 'woke',
    aborted: manager.signal.aborted,
    reason: manager.signal.aborted ? (manager.signal.reason as Error).name : null,
    stillHolds: manager.locks.length > 0,
  });
  await manager.release();
  report({ event: 'released' });
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
