/**
 * An app instance with a subscriber of the `acquired` lock event that throws, taking a lock: shows what
 * a subscriber's error does to the lock operation under way, and to the process.
 */
import { subscribe } from 'node:diagnostics_channel';
import { LOCKMGR_CHANNELS, LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface ThrowingSubscriberSettings extends WorkerDatabase {
  lockName: string;
}

export type ThrowingSubscriberEvent = { event: 'acquired'; fencingToken: number } | { event: 'released' };

const report = (event: ThrowingSubscriberEvent) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function main(settings: ThrowingSubscriberSettings): Promise<void> {
  const app = await createWorkerApp(settings);
  subscribe(LOCKMGR_CHANNELS.acquired, () => {
    throw new Error('The lock event subscriber failed');
  });
  const locks = app.get(LockService);
  const lock = await locks.getLock(settings.lockName, { expires: 60 });
  report({ event: 'acquired', fencingToken: lock.fencingToken });
  // What the process would do next, if it lived on.
  await locks.unlock(lock);
  report({ event: 'released' });
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
