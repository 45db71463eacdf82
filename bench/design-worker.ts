/**
 * An app instance of the designs of bench/design-lock.ts in a process of its own, with `pg` alone:
 * one connection for its statements and one that LISTENs, both opened once. It loops on one name
 * against the other processes (`go`), or takes one side of a hand-off (`acquire`, `wait`, `release`),
 * in the design each message names.
 */
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { channelOf, Design, DesignLock, DESIGNS, handsOver, OWN_CHANNEL, wakeAll } from './design-lock';
import { serveMessages } from './worker-process';

/** A waiter tries again after this long without a wake-up, which also renews its place. */
const SAFETY_TIMEOUT_MS = 1000;
const CONTENDED_NAME = 'contended';

/** The notifications heard on a design's channel and the process's own since the process's one waiter began its latest attempt. */
class Wakeups {
  private channel?: string;
  private heard: string[] = [];
  private wake?: () => void;

  hear(channel: string, payload: string): void {
    if (channel !== this.channel && channel !== OWN_CHANNEL) return;
    this.heard.push(payload);
    this.wake?.();
  }

  /** Called as an attempt begins: its snapshot shows whatever the releases heard so far did. */
  forget(channel: string): void {
    this.channel = channel;
    this.heard = [];
  }

  /** The first payload heard that `wakes`, waiting for it up to `timeoutMs`; undefined after that. */
  async next(wakes: (payload: string) => boolean, timeoutMs: number): Promise<string | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const payload = this.heard.find(wakes);
      if (payload !== undefined) return payload;
      const left = deadline - performance.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

/** How a process's acquisitions went: attempts repeated at once, and waits ended by the safety timeout. */
interface Tally {
  retries: number;
  timeouts: number;
}

async function main(): Promise<void> {
  const [url] = process.argv.slice(2);
  const statements = new Client({ connectionString: url });
  const listener = new Client({ connectionString: url });
  await Promise.all([statements.connect(), listener.connect()]);
  const locks = new Map(DESIGNS.map((design) => [design, new DesignLock(statements, design)]));
  const wakeups = new Wakeups();
  listener.on('notification', ({ channel, payload }) => payload !== undefined && wakeups.hear(channel, payload));
  for (const channel of [OWN_CHANNEL, ...DESIGNS.map(channelOf)]) await listener.query(`LISTEN ${channel}`);
  let tally: Tally = { retries: 0, timeouts: 0 };

  /** Waits for `name` in the queue until this process holds it; returns the owner token to release it with. */
  async function acquire(lock: DesignLock, name: string): Promise<string> {
    const owner = randomUUID();
    let ticket: string | null = null;
    for (;;) {
      wakeups.forget(channelOf(lock.design));
      const attempt = await lock.attempt(name, owner, ticket);
      if (attempt.token !== null) return owner;
      ticket = attempt.ticket;
      if (!attempt.sleeps || ticket === null) {
        tally.retries++;
        continue;
      }
      const mine = ticket;
      const payload = await wakeups.next((heard) => heard === wakeAll(name) || heard.split(' ', 1)[0] === mine, SAFETY_TIMEOUT_MS);
      if (payload === undefined) tally.timeouts++;
      else if (handsOver(lock.design) && payload !== wakeAll(name)) return owner;
    }
  }

  const held = new Map<string, string>();
  serveMessages(
    async (message) => {
      const name = message.name as string;
      const lock = locks.get(message.design as Design)!;
      switch (message.type) {
        case 'go': {
          tally = { retries: 0, timeouts: 0 };
          const deadline = performance.now() + (message.durationMs as number);
          let sections = 0;
          let waitedMs = 0;
          let longestWaitMs = 0;
          while (performance.now() < deadline) {
            const started = performance.now();
            const owner = await acquire(lock, CONTENDED_NAME);
            const heldAt = performance.now();
            // Once the run is over, a process still in the queue takes its turn, so as not to hold up the others, but it is not counted.
            if (heldAt < deadline) {
              sections++;
              waitedMs += heldAt - started;
              longestWaitMs = Math.max(longestWaitMs, heldAt - started);
            }
            await lock.release(CONTENDED_NAME, owner);
          }
          return { type: 'done', sections, waitedMs, longestWaitMs, ...tally };
        }
        case 'acquire':
          held.set(name, await acquire(lock, name));
          return { type: 'held' };
        case 'release': {
          const at = process.hrtime.bigint();
          await lock.release(name, held.get(name)!);
          held.delete(name);
          return { type: 'released', at: String(at) };
        }
        case 'wait':
          acquire(lock, name)
            .then(async (owner) => {
              const at = process.hrtime.bigint();
              await lock.release(name, owner);
              process.send!({ type: 'acquired', at: String(at) });
            })
            .catch((error: unknown) => {
              console.error(error);
              process.exit(1);
            });
          return { type: 'waiting' };
      }
      throw new Error(`Unknown message ${message.type}`);
    },
    async () => {
      await Promise.all([statements.end(), listener.end()]);
    },
  );
  process.send!({ type: 'ready' });
}

void main();
