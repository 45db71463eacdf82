/**
 * An app instance in a process of its own that loops acquire → empty critical section → release on
 * one name, against the others, for as long as it is told.
 */
import { LockedError } from '../lib';
import { createBenchApp } from './bench-app';
import { serveMessages } from './worker-process';

async function main(): Promise<void> {
  const [tableName] = process.argv.slice(2);
  const app = await createBenchApp('postgres', { tableName, poolSize: 2 });
  serveMessages(async (message) => {
    const deadline = performance.now() + (message.durationMs as number);
    let sections = 0;
    while (performance.now() < deadline) {
      const lock = await app.locks
        .getLock('contended', { wait: 30, expires: 60, signal: AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now()))) })
        .catch((error: unknown) => {
          if (error instanceof LockedError || (error as Error).name === 'TimeoutError') return null;
          throw error;
        });
      if (!lock) break;
      await app.locks.unlock(lock);
      sections++;
    }
    return { type: 'done', sections };
  }, app.close);
  process.send!({ type: 'ready' });
}

void main();
