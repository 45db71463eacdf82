import type { LockRecord } from '../lock.entity';

/**
 * The contract every lock store keeps: PostgreSQL, MySQL/MariaDB, SQLite and the in-memory store of
 * `nestjs-lockmgr/testing`. One suite of tests (`test/contract`) states it and runs on each of them.
 *
 * Guarantees that hold for every method:
 * - **Its own transaction.** Each call is one short transaction of its own, on a connection no caller
 *   transaction can be using: a caller's rollback never loses or hides a lock.
 * - **The store's clock.** Expiry is decided by the store's clock only (the database's `now()`), never
 *   the app's, so instances with skewed clocks agree on who holds a lock.
 * - **Expired means absent.** A row whose `locked_until` has passed is treated as missing by every
 *   method, whether or not it has been deleted yet; records returned describe live locks only.
 * - **Fencing tokens grow.** Each acquisition of any name gets a token greater than every token granted
 *   before it, across releases, expiries and clean-ups, for the life of the store.
 * - **Failures are errors.** A call that cannot reach the store rejects; it never answers "not locked".
 */
export interface LockDialect {
  /** The longest lock name the table's `name` column holds. */
  readonly maxNameLength: number;
  /**
   * Whether releases in other processes wake this process's waiters (PostgreSQL's NOTIFY). Then polling
   * is only a safety net; otherwise it is how other processes' releases are found, so it starts fast.
   */
  readonly announcesReleases: boolean;
  /**
   * The store's own clock, in milliseconds since the epoch, for a store whose time is not the process's:
   * the in-memory store, whose clock a test moves. Handles tell what is left of a lease by it, `minHold`
   * counts by it, and `@WithLock` names the tick of a `@Cron` call by it. Unset, for the databases: the
   * process's clocks, a monotonic one for leases (it moves as the server's does) and `Date.now()` for
   * ticks (the process's cron timers follow it).
   */
  clock?(): number;
  /** Creates or completes the lock table; safe when many instances start at once. */
  ensureTable(): Promise<void>;
  /** Reads the table's shape (such as `maxNameLength`); called once at start-up, after `ensureTable` if enabled. */
  inspectTable(): Promise<void>;
  /**
   * Takes `name` for `owner` if no live lock holds it, taking over an expired row atomically. Among
   * concurrent acquirers of a free name, exactly one succeeds. Fails without writing when the name is held.
   */
  acquire(request: AcquireRequest): Promise<AcquireResult>;
  /**
   * Deletes the live lock of `name` if `owner` holds it (compare-and-set), or whoever holds it when
   * `owner` is null. Resolves whether a live lock was released; a stale owner releases nothing.
   */
  release(request: ReleaseRequest): Promise<boolean>;
  /**
   * Moves the expiry of the live lock of `name`, if `owner` holds it (anyone, when null), by `mode`.
   * Resolves the renewed lock with its fencing token unchanged, or null when it is not held (by that owner).
   */
  renew(request: RenewRequest): Promise<LockRecord | null>;
  /** The live lock of `name`, or null. */
  find(name: string): Promise<LockRecord | null>;
  /** Every live lock, ordered by name. */
  list(): Promise<LockRecord[]>;
  /** Deletes up to `limit` expired rows and says how many it deleted. Live locks are never touched. */
  deleteExpired(limit: number): Promise<number>;
  /**
   * Creates and renews several locks in one transaction (django-lockmgr's `set_lock`), planned per name by
   * `planSetLock`. With `fail`, the first live lock met rolls the whole call back: nothing is written.
   */
  setLocks(request: SetLocksRequest): Promise<SetLocksResult>;
  /**
   * Starts a waiting acquirer's interest in releases of `name`, for the rest of its wait: a release in
   * this process (and, where `announcesReleases`, in any process) ends its current or next sleep.
   * `request` is the acquisition that waits: what it asks for, should a release hand the lock over to it
   * (its owner token aside).
   */
  subscribe(request: AcquireRequest): ReleaseWaiting;
  /** Ends the store's connections; no call is made after it. */
  close(): Promise<void>;
}

/** What an acquisition writes. */
export interface AcquireRequest {
  name: string;
  owner: string;
  /** Lease in seconds, or null for a lock that never expires. */
  expires: number | null;
  lockedBy: string | null;
  lockProcess: number | null;
  /**
   * The caller's place among the waiters for `name` (`ReleaseWaiting.place`), where the store serves them
   * in order: a free name goes to the first waiter, and a caller without a place comes after them all.
   */
  place?: string;
  /**
   * The caller waits if it gets no lock: a store that serves waiters in order may then take the caller's
   * place in the same round trip, and return the wait begun with the failed result.
   */
  waits?: boolean;
}

/** What a failed acquisition learns of the holder, so waiters can wake when the lease runs out. */
export interface HolderInfo {
  lockedBy: string | null;
  lockedUntil: Date | null;
  /** Seconds left by the database's clock; null when the lock never expires. */
  secondsLeft: number | null;
}

export type AcquireResult =
  | { acquired: true; lock: LockRecord }
  /**
   * `holder` is null when the holder committed after this statement's snapshot, so its row was not
   * visible. `waiting`: the wait the attempt began (see `AcquireRequest.waits`), which the caller closes.
   */
  | { acquired: false; holder: HolderInfo | null; waiting?: ReleaseWaiting };

/**
 * How a renewal moves `locked_until`:
 * - `extend`: to now + expires, unless the lock already lasts longer (django-lockmgr's `renew_lock`);
 * - `add`: by expires seconds (`addTime: true`);
 * - `set`: to exactly now + expires, shorter or not (releasing with `minHold`).
 * A never-expiring lock stays so under `extend` and `add`; `expires: null` makes it never expire.
 */
export type RenewMode = 'extend' | 'add' | 'set';

export interface RenewRequest {
  name: string;
  /** Only the holder with this owner token may renew; null renews whoever holds the name. */
  owner: string | null;
  expires: number | null;
  mode: RenewMode;
}

export interface ReleaseRequest {
  name: string;
  /** Only the holder with this owner token is released; null force-releases whoever holds the name. */
  owner: string | null;
}

export interface SetLocksRequest {
  /** One entry per distinct name, each with the owner token it gets if it is created. */
  locks: AcquireRequest[];
  fail: boolean;
  renew: boolean;
  create: boolean;
}

export type SetLockAction = 'create' | 'extend' | 'skip';

export interface SetLockStep {
  name: string;
  /** The live lock found before the call, if any. */
  existing: LockRecord | null;
  action: SetLockAction;
  /** The lock after the call; null when the name stays unlocked. */
  lock: LockRecord | null;
}

/** `fail: true` met `conflict`: the transaction rolled back and nothing was written. */
export type SetLocksResult = { steps: SetLockStep[] } | { conflict: LockRecord };

/** A waiting acquirer's sleeps between attempts; `close` when the wait ends. */
export interface ReleaseWaiting {
  /** Its place among the waiters for the name, in a store that serves waiters in order (taken by the failed attempt that began the wait, or by its first sleep). */
  readonly place?: string;
  /** Resolves when `name` may have been released (by any process), or after `timeoutMs`; rejects when `signal` aborts. */
  sleep(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  /**
   * The lock a release handed over to this wait, in a store that hands locks over (PostgreSQL), with a
   * reading of `performance.now()` from before the hand-over, from which its lease is counted. Taking
   * it ends the wait; a wait closed without taking it releases it.
   */
  handedOver?(): { lock: LockRecord; requestedAt: number } | undefined;
  /** The owner token of a lock handed over to this wait (its own attempts use others). */
  readonly owner?: string;
  close(): void;
}
