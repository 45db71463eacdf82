/**
 * One side of a hand-off, in a process of its own: the holder takes and releases a lock on command;
 * the waiter waits for it. For the floor under a hand-off, the holder also takes and releases a free
 * lock (`pair`), and on PostgreSQL sends a bare NOTIFY (`notify`) that the waiter hears (`listen`), with
 * `pg` alone. Times are `process.hrtime`, the machine's monotonic clock, which every process on the
 * host shares.
 */
import { Client } from 'pg';
import type { LockEntity } from '../lib';
import { BenchDatabase, createBenchApp, POSTGRES_URL } from './bench-app';
import { serveMessages } from './worker-process';

const FLOOR_CHANNEL = 'bench_floor';

/** A connection of its own, opened on first use. */
function ownConnection(): { client: () => Promise<Client>; end: () => Promise<void> } {
  let connected: Promise<Client> | undefined;
  return {
    client: () =>
      (connected ??= (async () => {
        const client = new Client({ connectionString: POSTGRES_URL });
        await client.connect();
        return client;
      })()),
    end: async () => (await connected)?.end(),
  };
}

async function main(): Promise<void> {
  const [database, tableName, notify] = process.argv.slice(2);
  const app = await createBenchApp(database as BenchDatabase, { tableName, notify: notify === 'notify', poolSize: 2 });
  const held = new Map<string, LockEntity>();
  const [notifier, listener] = [ownConnection(), ownConnection()];
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
      case 'pair': {
        const started = process.hrtime.bigint();
        await app.locks.unlock(await app.locks.getLock(name, { expires: 60 }));
        return { type: 'paired', ms: Number(process.hrtime.bigint() - started) / 1e6 };
      }
      case 'listen': {
        const client = await listener.client();
        client.removeAllListeners('notification');
        client.on('notification', () => process.send!({ type: 'heard', at: String(process.hrtime.bigint()) }));
        await client.query(`LISTEN ${FLOOR_CHANNEL}`);
        return { type: 'listening' };
      }
      case 'notify': {
        const client = await notifier.client();
        const at = process.hrtime.bigint();
        await client.query(`SELECT pg_notify('${FLOOR_CHANNEL}', '')`);
        return { type: 'notified', at: String(at) };
      }
    }
    throw new Error(`Unknown message ${message.type}`);
  }, async () => {
    await Promise.all([notifier.end(), listener.end()]);
    await app.close();
  });
  process.send!({ type: 'ready' });
}

void main();
