/**
 * An app instance in a process of its own that starts many waits at once, so the parent can see
 * what they cost: resident memory (measured after a full garbage collection) and connections.
 */
import { createBenchApp, WAITS_APPLICATION_NAME } from './bench-app';
import { serveMessages } from './worker-process';

function residentAfterCollection(): number {
  global.gc!();
  return process.memoryUsage().rss;
}

async function main(): Promise<void> {
  const [tableName] = process.argv.slice(2);
  const app = await createBenchApp('postgres', { tableName }, { applicationName: WAITS_APPLICATION_NAME });
  let before = 0;
  let acquired = 0;
  let finished: Promise<unknown> = Promise.resolve();
  serveMessages(async (message) => {
    switch (message.type) {
      case 'start': {
        // Warm the module up first, so what grows is the waits, not the first query's machinery.
        await app.locks.isLocked('warm-up');
        before = residentAfterCollection();
        const names = message.names as string[];
        finished = Promise.all(names.map((name) => app.locks.getLock(name, { wait: 120 }).then(() => acquired++)));
        return { type: 'started' };
      }
      case 'measure':
        return { type: 'measured', growth: residentAfterCollection() - before };
      case 'finish':
        await finished;
        return { type: 'finished', acquired };
    }
    throw new Error(`Unknown message ${message.type}`);
  }, app.close);
  process.send!({ type: 'ready' });
}

void main();
