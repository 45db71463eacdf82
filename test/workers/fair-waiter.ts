/**
 * An app instance in its own process that waits for locks on command, to show in which order waiters
 * of several processes are served. Commands come as JSON lines on its standard input
 * (`FairWaiterCommand`); it reports on its standard output as JSON lines (`FairWaiterReport`).
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockedError, LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export type FairWaiterCommand =
  /** Waits up to `seconds` for the lock `wait`; once it has it, keeps it `holdMs` and lets go of it. */
  | { wait: string; seconds: number; holdMs: number }
  /** Aborts the wait for the lock `abort` with an error whose message is `reason`. */
  | { abort: string; reason: string }
  /**
   * From `from` to `until` (epoch ms), takes the lock `contend` over and over, each time waiting up to
   * `seconds`, holding it `holdMs` and asking again as soon as it has let go.
   */
  | { contend: string; seconds: number; holdMs: number; from: number; until: number }
  | { stop: true };

/** One acquisition in a `contend` command: its fencing token, which orders it among every process's, and how long it waited. */
export interface ContendedSection {
  fencingToken: number;
  waitedMs: number;
}

/** What became of a command, for the lock it named. */
export type FairWaiterReport = { lock: string } & (
  | { event: 'acquired'; fencingToken: number }
  | { event: 'released' }
  /** A wait that ended without the lock: `error` is the name of the error it rejected with. */
  | { event: 'failed'; error: string; message: string }
  /** Each acquisition of a `contend` command, in order, and how many of its waits ran out. */
  | { event: 'contended'; sections: ContendedSection[]; timedOut: number }
);

const report = (message: FairWaiterReport | { ready: true }) => process.stdout.write(`${JSON.stringify(message)}\n`);

async function waitFor(locks: LockService, name: string, seconds: number, holdMs: number, signal: AbortSignal): Promise<void> {
  try {
    const lock = await locks.getLock(name, { wait: seconds, signal });
    report({ lock: name, event: 'acquired', fencingToken: lock.fencingToken });
    await sleep(holdMs);
    await locks.unlock(lock);
    report({ lock: name, event: 'released' });
  } catch (error) {
    report({ lock: name, event: 'failed', error: (error as Error).name, message: (error as Error).message });
  }
}

async function contend(locks: LockService, command: Extract<FairWaiterCommand, { contend: string }>): Promise<void> {
  await sleep(Math.max(0, command.from - Date.now()));
  const sections: ContendedSection[] = [];
  let timedOut = 0;
  while (Date.now() < command.until) {
    const askedAt = performance.now();
    try {
      const lock = await locks.getLock(command.contend, { wait: command.seconds });
      sections.push({ fencingToken: lock.fencingToken, waitedMs: performance.now() - askedAt });
      await sleep(command.holdMs);
      await locks.unlock(lock);
    } catch (error) {
      if (!(error instanceof LockedError)) throw error;
      timedOut++;
    }
  }
  report({ lock: command.contend, event: 'contended', sections, timedOut });
}

async function main(settings: WorkerDatabase): Promise<void> {
  const app = await createWorkerApp(settings);
  const locks = app.get(LockService);
  const aborts = new Map<string, AbortController>();
  const input = createInterface({ input: process.stdin });
  // Commands run side by side: an abort must reach a wait that is still under way.
  input.on('line', (line) => {
    const command = JSON.parse(line) as FairWaiterCommand;
    if ('stop' in command) return input.close();
    if ('abort' in command) return aborts.get(command.abort)?.abort(new Error(command.reason));
    if ('contend' in command) {
      contend(locks, command).catch((error) => report({ lock: command.contend, event: 'failed', error: error.name, message: error.message }));
      return;
    }
    const controller = new AbortController();
    aborts.set(command.wait, controller);
    void waitFor(locks, command.wait, command.seconds, command.holdMs, controller.signal).finally(() => aborts.delete(command.wait));
  });
  input.on('close', async () => {
    // The open input would keep the process alive.
    process.stdin.destroy();
    await app.close();
  });
  report({ ready: true });
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
