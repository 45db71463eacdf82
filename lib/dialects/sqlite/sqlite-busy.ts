import { setTimeout as pause } from 'node:timers/promises';

/**
 * How long, in milliseconds, one statement may block the thread waiting for another connection's
 * write lock on the file (SQLite's busy timeout). better-sqlite3 waits synchronously, so this stays
 * short; longer waits are pauses between attempts, during which the event loop runs.
 */
export const SQLITE_BUSY_TIMEOUT_MS = 2;

const FIRST_PAUSE_MS = 2;
const LONGEST_PAUSE_MS = 100;

/** Whether better-sqlite3 failed because another connection held the lock it needed (SQLITE_BUSY and its extended codes). */
function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Runs `attempt` again, whole, each time it fails with SQLITE_BUSY, pausing between attempts without
 * blocking (backing off, with jitter, so waiting processes do not come back together). After
 * `timeoutSeconds` since the first attempt it fails, saying the file stayed locked. `attempt` must
 * leave nothing behind when it fails: a transaction it began is rolled back before it throws.
 */
export async function retryWhileBusy<T>(attempt: () => T, timeoutSeconds: number): Promise<T> {
  const giveUpAt = performance.now() + timeoutSeconds * 1000;
  for (let longest = FIRST_PAUSE_MS; ; longest = Math.min(longest * 2, LONGEST_PAUSE_MS)) {
    try {
      return attempt();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const left = giveUpAt - performance.now();
      if (left <= 0) {
        throw new Error(
          `The database file stayed locked by another connection for ${timeoutSeconds} seconds (the operationTimeout option).`,
          { cause: error },
        );
      }
      await pause(Math.min(left, longest * (0.5 + Math.random() / 2)));
    }
  }
}
