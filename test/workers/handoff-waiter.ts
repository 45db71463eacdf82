/**
 * An app instance in its own process that waits for locks another process holds, all at once (a
 * name may be listed twice: two waits in one process). It reports, as JSON lines, when it started
 * waiting and then each lock it got, by the host's clock (`performance.timeOrigin + performance.now()`,
 * comparable across processes); it lets go of each lock as soon as it has it.
 */
import { LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface HandoffWaiterSettings extends WorkerDatabase {
  lockNames: string[];
  wait: number;
  pollInterval: number;
}

export interface HandoffWaiterWaiting {
  event: 'waiting';
  at: number;
}

export interface HandoffWaiterAcquired {
  event: 'acquired';
  name: string;
  at: number;
  fencingToken: number;
}

const now = () => performance.timeOrigin + performance.now();
const report = (event: HandoffWaiterWaiting | HandoffWaiterAcquired) => process.stdout.write(`${JSON.stringify(event)}\n`);

async function main(settings: HandoffWaiterSettings): Promise<void> {
  const app = await createWorkerApp(settings, { lockOptions: { pollInterval: settings.pollInterval } });
  const locks = app.get(LockService);
  report({ event: 'waiting', at: now() });
  await Promise.all(
    settings.lockNames.map(async (name) => {
      const lock = await locks.getLock(name, { wait: settings.wait });
      report({ event: 'acquired', name, at: now(), fencingToken: lock.fencingToken });
      await locks.unlock(lock);
    }),
  );
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
