import type { ReleaseWaiting } from './lock-dialect';
import type { ReleaseSubscription } from './release-waiters';

/**
 * A wait whose releases a dialect watches for in other processes. Before each sleep, `announce` makes
 * sure that a release from then on will end it, and resolves how long the sleep may last: 0 when the
 * lock is free already, else until its lease ends. If it fails, the sleep is a poll, and however long
 * it takes, the sleep ends when the poll is due: the wake-up is never what a wait depends on. `stop`
 * ends the watching when the wait ends.
 */
export function watchedWaiting(subscription: ReleaseSubscription, announce: () => Promise<number>, stop: () => void): ReleaseWaiting {
  /** When each sleep whose announcement is still under way must end. */
  const pollsDue = new Set<NodeJS.Timeout>();
  const announced = (timeoutMs: number) =>
    new Promise<number>((resolve, reject) => {
      const startedAt = performance.now();
      const pollDue = setTimeout(() => resolve(0), timeoutMs);
      pollsDue.add(pollDue);
      announce()
        .then((limitMs) => resolve(Math.min(limitMs, timeoutMs - (performance.now() - startedAt))), reject)
        .finally(() => {
          clearTimeout(pollDue);
          pollsDue.delete(pollDue);
        });
    });
  return {
    sleep: (timeoutMs, signal) => subscription.sleep(timeoutMs, signal, () => announced(timeoutMs)),
    close: () => {
      for (const pollDue of pollsDue) clearTimeout(pollDue);
      subscription.close();
      stop();
    },
  };
}

/** Milliseconds a waiter may sleep on a lease with `secondsLeft` (null: it never ends), waking just after it ends. */
export function untilLeaseEnds(secondsLeft: number | null): number {
  return secondsLeft === null ? Infinity : Math.max(0, secondsLeft * 1000) + 1;
}
