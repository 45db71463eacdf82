/**
 * One side of a hand-off, in a process of its own: the holder takes and releases a lock on command;
 * the waiter waits for it. Times are `process.hrtime`, the machine's monotonic clock, which every
 * process on the host shares.
 */
import type { LockEntity } from '../lib';
import { BenchDatabase, createBenchApp } from './bench-app';
import { serveMessages } from './worker-process';

async function main(): Promise<void> {
  const [database, tableName, notify] = process.argv.slice(2);
  const app = await createBenchApp(database as BenchDatabase, { tableName, notify: notify === 'notify', poolSize: 2 });
  const held = new Map<string, LockEntity>();
  serveMessages(async (message) => {
    const name = message.name as string;
    switch (message.type) {
      case 'acquire':
        held.set(name, await app.locks.getLock(name, { expires: 60 }));
        return { type: 'held' };
      case 'release': {
        const at = process.hrtime.bigint();
        await app.locks.unlock(held.get(name)!);
        held.delete(name);
        return { type: 'released', at: String(at) };
      }
      case 'wait':
        void app.locks.getLock(name, { wait: 30 }).then(async (lock) => {
          const at = process.hrtime.bigint();
          await app.locks.unlock(lock);
          process.send!({ type: 'acquired', at: String(at) });
        });
        return { type: 'waiting' };
    }
    throw new Error(`Unknown message ${message.type}`);
  }, app.close);
  process.send!({ type: 'ready' });
}

void main();
