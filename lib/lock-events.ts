import { channel } from 'node:diagnostics_channel';
import type { LockedError, LockLostError } from './errors';
import type { LockEntity, LockRecord } from './lock.entity';

/**
 * The `node:diagnostics_channel` channels on which nestjs-lockmgr publishes what happens to locks in
 * this process. Subscribe with `subscribe(LOCKMGR_CHANNELS.acquired, (message) => …)` from
 * `node:diagnostics_channel`; the message of each channel is described by the interface named after
 * it ({@link LockAcquiredMessage} …). Nothing is built or sent while a channel has no subscriber.
 *
 * A subscriber must not throw: the lock operation under way still completes, but Node rethrows the
 * error as an uncaught exception, which ends the process and leaves its locks taken until their leases
 * end. Catch and log inside the subscriber.
 *
 * Times are seconds. Durations are measured by this process's monotonic clock; dates are the
 * database's.
 */
export const LOCKMGR_CHANNELS = {
  /** A lock was taken: {@link LockAcquiredMessage}. */
  acquired: 'nestjs-lockmgr:acquired',
  /** A lock was renewed: {@link LockRenewedMessage}. */
  renewed: 'nestjs-lockmgr:renewed',
  /** A lock was released: {@link LockReleasedMessage}. */
  released: 'nestjs-lockmgr:released',
  /** A lock held by a manager, `withLock` or `@WithLock` was lost: {@link LockLostMessage}. */
  lost: 'nestjs-lockmgr:lost',
  /** A `@WithLock` method did not run because its lock was held elsewhere, or a `@LeaderOnly` one because this instance does not lead: {@link LockSkippedMessage}. */
  skipped: 'nestjs-lockmgr:skipped',
  /** This instance became the leader of a name (`lead()`, `@LeaderOnly`): {@link LockElectedMessage}. */
  elected: 'nestjs-lockmgr:elected',
  /** This instance's term as leader of a name ended: {@link LockDemotedMessage}. */
  demoted: 'nestjs-lockmgr:demoted',
} as const;

/**
 * Published on `nestjs-lockmgr:acquired` by every acquisition of this process: `getLock`, `tryLock`,
 * managers, `withLock`, `@WithLock`, `renewLock` with `create`, and the names `setLock` creates.
 */
export interface LockAcquiredMessage {
  /** The lock table (`tableName` of the module), which tells apart the locks of several modules. */
  table: string;
  name: string;
  fencingToken: number;
  lockedBy: string | null;
  /** When the lock expires, by the database's clock; null when it never does. */
  lockedUntil: Date | null;
  /** Seconds of lease it was taken with, by the database's clock; null when it never expires. */
  expiresIn: number | null;
  /** Seconds from the call to the grant: the wait for a lock held elsewhere, and the round trips. */
  waited: number;
}

/**
 * Published on `nestjs-lockmgr:renewed` by every renewal of this process: `renewLock`, a manager's
 * `renew()` and automatic renewals (those of `withLock` and `@WithLock` too), and the names
 * `setLock` renews.
 */
export interface LockRenewedMessage {
  table: string;
  name: string;
  fencingToken: number;
  /** When the lock now expires, by the database's clock; null when it never does. */
  lockedUntil: Date | null;
  /** Seconds of lease left after the renewal, by the database's clock; null when it never expires. */
  expiresIn: number | null;
}

/**
 * Published on `nestjs-lockmgr:released` by every release of this process that released a lock:
 * `unlock` through a handle or by name, and managers, `withLock` and `@WithLock` letting go.
 */
export interface LockReleasedMessage {
  table: string;
  name: string;
  /** The released lock's fencing token; null when it was released by name, which does not read it. */
  fencingToken: number | null;
  /** Seconds since this process took the lock; null when released by name, or through a handle this process did not take (a row read through a TypeORM repository). */
  held: number | null;
  /** Whether it was released by name (`unlock('name')`), whoever held it. */
  forced: boolean;
  /**
   * With `minHold`: the lock is no longer this process's, but stays taken (by nobody) until this
   * time, by the database's clock. Null when it is free now.
   */
  keptUntil: Date | null;
}

/**
 * Published on `nestjs-lockmgr:lost` when a manager (from `manager()`, `withLock` or `@WithLock`)
 * finds that one of its locks is lost, at the moment its `signal` aborts: a renewal found it
 * released by someone else, or its lease ran out before a renewal could reach the database.
 */
export interface LockLostMessage {
  table: string;
  name: string;
  /** The fencing token the lost lock had. */
  fencingToken: number;
  /** Seconds since this process took the lock. */
  held: number | null;
  /** The error the manager's `signal` aborts with; its message says why the lock was lost. */
  error: LockLostError;
}

/**
 * Published on `nestjs-lockmgr:skipped` when a `@WithLock` method skipped a run because its lock was
 * held elsewhere: a scheduled (`@Cron`, `@Interval`, `@Timeout`) or event (`@OnEvent`) handler, or
 * any method with `onLocked: 'skip'`; and when a `@LeaderOnly` method was called on an instance that
 * does not lead its name.
 */
export interface LockSkippedMessage {
  table: string;
  name: string;
  /** The method that did not run, as `Class.method`. */
  method: string;
  /** Seconds from the call until it gave up (its `wait` option, and the round trips). */
  waited: number;
  /** What the acquisition found: `lockedBy` and `lockedUntil` of the holder, when the database told. */
  error: LockedError;
}

/** Published on `nestjs-lockmgr:elected` when a term of this instance as leader begins. */
export interface LockElectedMessage {
  table: string;
  /** The name led (the name of the leader's lock). */
  name: string;
  /** The term's fencing token: greater than that of every earlier term of the name. */
  fencingToken: number;
  /** Seconds from the start of the campaign that won until the election. */
  waited: number;
}

/** Why a term as leader ended. */
export type DemotionReason = 'resigned' | 'lost' | 'shutdown';

/** Published on `nestjs-lockmgr:demoted` when a term of this instance as leader ends, as its `signal` aborts. */
export interface LockDemotedMessage {
  table: string;
  name: string;
  /** The fencing token of the term that ended. */
  fencingToken: number;
  /**
   * `resigned`: `resign()` was called; `shutdown`: the application shut down; `lost`: the lease could
   * no longer be counted on (renewals failed, the process stalled, or someone force-released the lock).
   */
  reason: DemotionReason;
  /** Seconds the term lasted, by this process's monotonic clock. */
  held: number;
  /** The `LockLostError` the term's `signal` aborts with; its message says why the term ended. */
  error: LockLostError;
}

/** The message of each channel of `LOCKMGR_CHANNELS`. */
export interface LockEventMessages {
  acquired: LockAcquiredMessage;
  renewed: LockRenewedMessage;
  released: LockReleasedMessage;
  lost: LockLostMessage;
  skipped: LockSkippedMessage;
  elected: LockElectedMessage;
  demoted: LockDemotedMessage;
}

interface LockEventChannel<Message> {
  readonly hasSubscribers: boolean;
  publish(message: Message): void;
}

/**
 * @internal The channels, held here for the life of the process (so subscriptions by name reach
 * them). Publishers check `hasSubscribers` first, so that a process nobody observes builds no message.
 */
export const lockChannels: { [Event in keyof LockEventMessages]: LockEventChannel<LockEventMessages[Event]> } = {
  acquired: channel(LOCKMGR_CHANNELS.acquired),
  renewed: channel(LOCKMGR_CHANNELS.renewed),
  released: channel(LOCKMGR_CHANNELS.released),
  lost: channel(LOCKMGR_CHANNELS.lost),
  skipped: channel(LOCKMGR_CHANNELS.skipped),
  elected: channel(LOCKMGR_CHANNELS.elected),
  demoted: channel(LOCKMGR_CHANNELS.demoted),
};

/**
 * @internal How an acquisition call ended (`getLock`, `tryLock`, managers, `withLock`, `@WithLock`,
 * `renewLock` with `create`, `LockManager.lock`): the one outcome the public channels do not carry
 * (calls that found the lock held or failed), for the metrics. Not part of the public API.
 */
export interface AcquisitionEndedMessage {
  table: string;
  /** `locked`: the lock stayed held elsewhere; `error`: the call threw (the database failed, or the caller gave up). */
  outcome: 'acquired' | 'locked' | 'error';
  /** Seconds from the call until it ended, waits included. */
  seconds: number;
}

/** @internal Published where `LockOperations.acquire` ends; the metrics subscribe to it by this name. */
export const ACQUISITION_ENDED_CHANNEL = 'nestjs-lockmgr:internal:acquisition-ended';

/** @internal The channel of {@link AcquisitionEndedMessage}. */
export const acquisitionEnded: LockEventChannel<AcquisitionEndedMessage> = channel(ACQUISITION_ENDED_CHANNEL);

/** @internal Seconds since `start`, a `performance.now()`. */
export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}

/** @internal Seconds since this process took the lock of `handle`, when it did. */
export function heldSeconds(handle: Pick<LockEntity, 'takenAt'> | undefined): number | null {
  return handle?.takenAt === undefined ? null : secondsSince(handle.takenAt);
}

/** @internal Where a lock stands after an acquisition or renewal, as the database answered it. */
export function leaseOf(record: LockRecord): Pick<LockAcquiredMessage, 'name' | 'fencingToken' | 'lockedUntil' | 'expiresIn'> {
  return { name: record.name, fencingToken: record.fencingToken, lockedUntil: record.lockedUntil, expiresIn: record.secondsLeft };
}
