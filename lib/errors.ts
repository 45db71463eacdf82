import type { LockEntity } from './lock.entity';

/** Base class of every error nestjs-lockmgr throws on purpose. */
export class LockMgrError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Holder details a failed acquisition learned, when the database told us. */
export interface LockHolder {
  lockedBy: string | null;
  lockedUntil: Date | null;
  /** Seconds left of the holder's lease by the database's clock; null when it never expires. */
  secondsLeft?: number | null;
}

/** The lock is held by someone else (django-lockmgr's `Locked`). */
export class LockedError extends LockMgrError {
  readonly lockedBy?: string | null;
  readonly lockedUntil?: Date | null;
  /**
   * Seconds that were left of the holder's lease, by the database's clock, when the acquisition found the
   * lock held; null when it never expires, undefined when the database did not say.
   */
  readonly secondsLeft?: number | null;

  constructor(
    readonly lockName: string,
    holder?: LockHolder | null,
    message?: string,
  ) {
    super(message ?? LockedError.describe(lockName, holder));
    if (holder) {
      this.lockedBy = holder.lockedBy;
      this.lockedUntil = holder.lockedUntil;
      if (holder.secondsLeft !== undefined) this.secondsLeft = holder.secondsLeft;
    }
  }

  private static describe(lockName: string, holder?: LockHolder | null): string {
    if (!holder) return `Lock "${lockName}" is held by another owner.`;
    const by = holder.lockedBy ? ` by ${holder.lockedBy}` : '';
    const until = holder.lockedUntil
      ? `until ${holder.lockedUntil.toISOString()}`
      : 'with no expiry (it must be unlocked explicitly)';
    return `Lock "${lockName}" is held${by} ${until}.`;
  }
}

/** The lock does not exist, has expired, or belongs to another owner (django-lockmgr's `LockNotFound`). */
export class LockNotFoundError extends LockMgrError {
  constructor(readonly lockName: string) {
    super(
      `Lock "${lockName}" is not held by this handle: it was released, it expired, or another owner took it over.`,
    );
  }
}

/**
 * `setLock(…, { fail: true })` met a lock that already existed; nothing it created remains (django-lockmgr's `LockFail`).
 * `lock` describes that lock without its owner token: it says who holds it, and cannot act on it as its owner.
 */
export class LockFailError extends LockedError {
  constructor(readonly lock: LockEntity) {
    super(
      lock.name,
      lock,
      `setLock aborted: lock "${lock.name}" already exists, so no lock of this call was kept.`,
    );
  }
}

/** A lock this process held was lost: its lease ran out before it could be renewed, or someone force-released it. */
export class LockLostError extends LockMgrError {
  constructor(
    readonly lockName: string,
    reason: string,
    options?: ErrorOptions,
  ) {
    super(`Lock "${lockName}" was lost: ${reason}.`, options);
  }
}

/**
 * The database failed a lock operation (unreachable, restarted, too slow for the `operationTimeout`).
 * Nothing is known of the lock's state: treat it as not held. `cause` is the driver's error.
 */
export class LockDatabaseError extends LockMgrError {
  constructor(
    readonly lockName: string | undefined,
    action: string,
    cause: unknown,
  ) {
    // Not `instanceof Error`: a native driver's errors can belong to another realm (under jest, the
    // first test file's), and their message is what says what went wrong.
    const reason = typeof (cause as Error | null)?.message === 'string' ? (cause as Error).message : String(cause);
    super(`Could not ${action}: ${reason}`, { cause });
  }
}
