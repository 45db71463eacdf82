/**
 * One app instance of the soak, in its own process: it loops over critical sections on a few lock
 * names, each one a read-modify-write of a fenced resource (a `FencedStore`), until it is stopped (or
 * killed). Now and then it freezes inside a critical section for longer than its lease, as a stalled
 * process would. Each write logs the value read plus one, so if two holders ever overlapped
 * unfenced, the log shows it: a value repeated or skipped, or a token going back.
 */
import { LockDatabaseError, LockedError, LockService } from '../../lib';
import { FencedStore } from '../support/fenced-store';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface SoakWorkerSettings extends WorkerDatabase {
  lockNames: string[];
  resourceDirectory: string;
  /** Lease of each critical section, in seconds (renewed while it runs). */
  expires: number;
  /** Chance, per critical section, of freezing for `expires * 1.5` seconds inside it. */
  freezeChance: number;
}

export interface SoakWorkerStats {
  sections: number;
  fencedOff: number;
  /** Writes fenced off while their holder still believed it held the lock: two holders at once. */
  heldTwice: number;
  databaseErrors: number;
  timedOut: number;
  freezes: number;
  lost: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function main(settings: SoakWorkerSettings): Promise<void> {
  let stopping = false;
  process.on('SIGTERM', () => (stopping = true));
  const app = await createWorkerApp(settings, { lockOptions: { operationTimeout: 2 }, logger: false });
  const locks = app.get(LockService);
  const stats: SoakWorkerStats = { sections: 0, fencedOff: 0, heldTwice: 0, databaseErrors: 0, timedOut: 0, freezes: 0, lost: 0 };
  const report = setInterval(() => process.stdout.write(`${JSON.stringify(stats)}\n`), 250);

  while (!stopping) {
    const name = settings.lockNames[Math.floor(Math.random() * settings.lockNames.length)];
    const store = new FencedStore(settings.resourceDirectory, name);
    try {
      await locks.withLock(
        name,
        async (manager) => {
          const value = store.read(manager.fencingToken);
          await sleep(Math.random() * 3);
          if (Math.random() < settings.freezeChance) {
            stats.freezes++;
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, settings.expires * 1500);
            await sleep(10);
          }
          // A careful holder would stop here when its signal has aborted; this one writes anyway, to
          // show that the store turns it away.
          if (manager.signal.aborted) stats.lost++;
          if (store.write(manager.fencingToken, value + 1)) stats.sections++;
          else if (manager.signal.aborted) stats.fencedOff++;
          else stats.heldTwice++;
        },
        { wait: 10, expires: settings.expires },
      );
    } catch (error) {
      if (error instanceof LockDatabaseError || (error as Error).name === 'AggregateError') stats.databaseErrors++;
      else if (error instanceof LockedError) stats.timedOut++;
      else throw error;
      await sleep(100);
    }
  }
  clearInterval(report);
  process.stdout.write(`${JSON.stringify(stats)}\n`);
  await app.close().catch(() => undefined);
  process.exit(0);
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
