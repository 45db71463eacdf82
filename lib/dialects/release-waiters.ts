/**
 * In-process wake-ups for waiting acquirers: a release in this process wakes the waiters of that
 * name at once, and a dialect that learns of releases elsewhere (PostgreSQL's NOTIFY) wakes them too.
 */
export class ReleaseWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();

  /** Resolves on `wake(name)` or after `timeoutMs`; rejects with the signal's reason when it aborts. */
  wait(name: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        const wakers = this.waiting.get(name);
        wakers?.delete(wake);
        if (wakers?.size === 0) this.waiting.delete(name);
      };
      const wake = () => {
        finish();
        resolve();
      };
      const abort = () => {
        finish();
        reject(signal!.reason);
      };
      const timer = setTimeout(wake, timeoutMs);
      signal?.addEventListener('abort', abort, { once: true });
      let wakers = this.waiting.get(name);
      if (!wakers) this.waiting.set(name, (wakers = new Set()));
      wakers.add(wake);
    });
  }

  wake(name: string): void {
    const wakers = this.waiting.get(name);
    if (wakers) for (const wake of [...wakers]) wake();
  }

  /** Names with at least one waiter. */
  get names(): IterableIterator<string> {
    return this.waiting.keys();
  }

  /** How many waits are pending, across all names. */
  get size(): number {
    let count = 0;
    for (const wakers of this.waiting.values()) count += wakers.size;
    return count;
  }
}
