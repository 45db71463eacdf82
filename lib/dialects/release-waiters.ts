/**
 * In-process wake-ups for waiting acquirers: a release in this process wakes the waiters of that
 * name at once, and a dialect that learns of releases elsewhere (PostgreSQL's NOTIFY) wakes them too.
 */
export class ReleaseWaiters {
  private readonly subscriptions = new Map<string, Set<ReleaseSubscription>>();

  /**
   * Registers interest in `name` for the whole of a waiting acquisition, so a release that lands
   * while the acquirer is busy with an attempt (not asleep) still counts: its next sleep ends at once.
   */
  subscribe(name: string): ReleaseSubscription {
    let subscriptions = this.subscriptions.get(name);
    if (!subscriptions) this.subscriptions.set(name, (subscriptions = new Set()));
    const subscription = new ReleaseSubscription(() => {
      subscriptions.delete(subscription);
      if (subscriptions.size === 0 && this.subscriptions.get(name) === subscriptions) this.subscriptions.delete(name);
    });
    subscriptions.add(subscription);
    return subscription;
  }

  wake(name: string): void {
    for (const subscription of this.subscriptions.get(name) ?? []) subscription.wake();
  }

  /** Wakes every waiter: after a gap in which wake-ups may have been lost, all of them should look again. */
  wakeAll(): void {
    for (const subscriptions of this.subscriptions.values()) for (const subscription of subscriptions) subscription.wake();
  }

  /** How many acquirers are waiting, across all names. */
  get size(): number {
    let count = 0;
    for (const subscriptions of this.subscriptions.values()) count += subscriptions.size;
    return count;
  }
}

/** One waiting acquirer's interest in one name. */
export class ReleaseSubscription {
  private woken = false;
  private interrupt?: () => void;

  constructor(private readonly unsubscribe: () => void) {}

  wake(): void {
    this.woken = true;
    this.interrupt?.();
  }

  /**
   * Sleeps until a wake-up (or returns at once if one came since the last sleep), `timeoutMs`, or the
   * signal aborting (then rejects with its reason). `prepare` runs once the sleep has begun, so a
   * wake-up it provokes is not missed; it may shorten the sleep by resolving to a new limit in ms. If it
   * fails, the sleep lasts `timeoutMs`.
   */
  sleep(timeoutMs: number, signal?: AbortSignal, prepare?: () => Promise<number>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      let timer: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        this.woken = false;
        this.interrupt = undefined;
        clearTimeout(timer);
        signal?.removeEventListener('abort', abort);
        outcome();
      };
      const wake = () => settle(resolve);
      const abort = () => settle(() => reject(signal!.reason));
      if (this.woken) return wake();
      this.interrupt = wake;
      signal?.addEventListener('abort', abort, { once: true });
      const sleepFor = (ms: number) => {
        if (!settled) timer = setTimeout(wake, Math.max(0, ms));
      };
      // Without the announcement (the database did not answer), the sleep is a poll: the wait goes on.
      if (prepare) prepare().then((limitMs) => sleepFor(Math.min(timeoutMs, limitMs)), () => sleepFor(timeoutMs));
      else sleepFor(timeoutMs);
    });
  }

  close(): void {
    this.interrupt = undefined;
    this.unsubscribe();
  }
}
