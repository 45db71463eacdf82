import type { LockAcquiredMessage, LockRenewedMessage } from '../lock-events';

interface HeldLock {
  fencingToken: number;
  /** `performance.now()` when this process took it. */
  takenAt: number;
  /** When its lease ends as this app last set it, on the store's scale of elapsed time; null: never. */
  endsAt: number | null;
}

/**
 * @internal The locks of one lock table held through this process, as its lock events tell: taken by
 * an acquisition (or created by `setLock`) and not yet let go. A lock is let go when it is released,
 * force-released by name, lost, or when its lease, as this app last renewed it, runs out. Keyed by
 * lock name, since a name has one holder at a time: events about a lock this app does not hold (a
 * release by name of someone else's lock, a renewal of it) change nothing, so the count cannot drift.
 */
export class HeldLocks {
  private readonly locks = new Map<string, HeldLock>();

  /** @param elapsed milliseconds on the scale of the store's clock (`LockOperations.elapsed`), which leases follow. */
  constructor(private readonly elapsed: () => number) {}

  taken({ name, fencingToken, expiresIn }: LockAcquiredMessage): void {
    this.locks.set(name, { fencingToken, takenAt: performance.now(), endsAt: this.endOf(expiresIn) });
  }

  renewed({ name, fencingToken, expiresIn }: LockRenewedMessage): void {
    const lock = this.locks.get(name);
    if (lock?.fencingToken === fencingToken) lock.endsAt = this.endOf(expiresIn);
  }

  /**
   * Forgets a lock this app let go of (`fencingToken` null: by name, whichever token it had) and
   * returns the seconds it was held; null when the app held no such lock.
   */
  letGo(name: string, fencingToken: number | null): number | null {
    const lock = this.locks.get(name);
    if (!lock || (fencingToken !== null && fencingToken !== lock.fencingToken)) return null;
    this.locks.delete(name);
    return (performance.now() - lock.takenAt) / 1000;
  }

  /** How many are held now: locks whose lease has run out are forgotten first. */
  count(): number {
    const now = this.elapsed();
    for (const [name, lock] of this.locks) {
      if (lock.endsAt !== null && lock.endsAt <= now) this.locks.delete(name);
    }
    return this.locks.size;
  }

  private endOf(expiresIn: number | null): number | null {
    return expiresIn === null ? null : this.elapsed() + expiresIn * 1000;
  }
}
