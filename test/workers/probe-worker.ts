/**
 * An app instance in its own process that answers commands on its standard input, one JSON line
 * each: take a lock, or report how it sees a set of locks. Run with a skewed clock, it shows whether
 * instances with different clocks agree.
 */
import { createInterface } from 'node:readline';
import { LockService } from '../../lib';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface ProbeSettings extends WorkerDatabase {
}

export type ProbeCommand = { take: string; expires: number } | { look: string[] } | { stop: true };

export interface LockView {
  locked: boolean;
  free: boolean;
  expiresSeconds: number | null;
  expired: boolean | null;
}

export type ProbeReport =
  | { ready: true; clockOffByMs: number }
  | { taken: string; expiresSeconds: number | null; expired: boolean }
  | { views: Record<string, LockView> };

const report = (message: ProbeReport) => process.stdout.write(`${JSON.stringify(message)}\n`);

async function main(settings: ProbeSettings): Promise<void> {
  const app = await createWorkerApp(settings);
  const locks = app.get(LockService);
  report({ ready: true, clockOffByMs: Date.now() - performance.timeOrigin - performance.now() });
  for await (const line of createInterface({ input: process.stdin })) {
    const command: ProbeCommand = JSON.parse(line);
    if ('stop' in command) break;
    if ('take' in command) {
      const lock = await locks.getLock(command.take, { expires: command.expires });
      report({ taken: lock.name, expiresSeconds: lock.expiresSeconds, expired: lock.expired });
      continue;
    }
    const listed = await locks.listLocks();
    const views: Record<string, LockView> = {};
    for (const name of command.look) {
      const lock = listed.find((candidate) => candidate.name === name);
      const locked = await locks.isLocked(name);
      // Taking a free lock for a millisecond proves it free; a held one refuses.
      const free = await locks.tryLock(name, { expires: 0.001 });
      views[name] = { locked, free: free !== null, expiresSeconds: lock ? lock.expiresSeconds : null, expired: lock ? lock.expired : null };
    }
    report({ views });
  }
  // The open input would keep the process alive.
  process.stdin.destroy();
  await app.close();
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
