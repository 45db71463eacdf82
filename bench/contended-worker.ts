/**
 * An app instance in a process of its own that loops acquire → empty critical section → release on
 * one name, against the others, for as long as it is told, timing each wait for the lock and each release.
 */
import { LockedError } from '../lib';
import { createBenchApp } from './bench-app';
import { serveMessages } from './worker-process';

async function main(): Promise<void> {
  const [tableName] = process.argv.slice(2);
  const app = await createBenchApp('postgres', { tableName, poolSize: 2 });
  serveMessages(async (message) => {
    const deadline = performance.now() + (message.durationMs as number);
    const waits: number[] = [];
    const releases: number[] = [];
    while (performance.now() < deadline) {
      const askedAt = performance.now();
      const lock = await app.locks
        .getLock('contended', { wait: 30, expires: 60, signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now()))) })
        .catch((error: unknown) => {
          if (error instanceof LockedError || (error as Error).name === 'TimeoutError') return null;
          throw error;
        });
      if (!lock) break;
      waits.push(performance.now() - askedAt);
      const releasedAt = performance.now();
      await app.locks.unlock(lock);
      releases.push(performance.now() - releasedAt);
    }
    return { type: 'done', waits, releases };
  }, app.close);
  process.send!({ type: 'ready' });
}

void main();
