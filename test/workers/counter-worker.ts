/**
 * One instance of a clustered app, as its own OS process. For each of its lock names it keeps a
 * resource on disk: a counter it increments under the lock (read, pause, write: an update is lost
 * if two run at once), and the log of the fencing tokens its writes carried, as a fenced resource
 * would record them. It takes the names in turn, `iterations` times each.
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface CounterWorkerSettings extends WorkerDatabase {
  lockNames: string[];
  iterations: number;
  /** Holds `<name>.counter` and `<name>.tokens` for each lock name. */
  resourceDirectory: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(settings: CounterWorkerSettings): Promise<void> {
  const app = await createWorkerApp(settings);
  const locks = app.get(LockService);
  for (let i = 0; i < settings.iterations * settings.lockNames.length; i++) {
    const name = settings.lockNames[i % settings.lockNames.length];
    const counter = join(settings.resourceDirectory, `${name}.counter`);
    await locks.withLock(
      name,
      async (manager) => {
        const value = Number(readFileSync(counter, 'utf8'));
        await sleep(1);
        writeFileSync(counter, String(value + 1));
        appendFileSync(join(settings.resourceDirectory, `${name}.tokens`), `${manager.fencingToken}\n`);
      },
      { wait: 120, expires: 30 },
    );
  }
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
