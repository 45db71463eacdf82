import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { AbandonedLocks } from './abandoned-locks';
import type { HolderInfo, LockDialect, ReleaseRequest, ReleaseWaiting, RenewMode } from './dialects/lock-dialect';
import { LockDatabaseError, LockedError, LockMgrError } from './errors';
import { LockEntity, LockRecord } from './lock.entity';
import { acquisitionEnded, heldSeconds, leaseOf, lockChannels, secondsSince } from './lock-events';
import { untilLeaseEnds } from './dialects/watched-waiting';
import { AcquireAttempt, LockRequests } from './lock-requests';
import { LOCK_DIALECT, LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';

/** Where releases are not announced, polling starts this short and backs off to the `pollInterval` option. */
const FIRST_POLL_MS = 25;
/** Added to the operation timeout before an abandoned lock is released for the last time: network and scheduling delays. */
const SETTLE_MARGIN_MS = 1000;

/**
 * @internal The lock operations that `LockService` and `LockManager` share: the wait-and-acquire loop,
 * renewals and releases (owner-checked through a handle, forced by name), each announced once on the
 * lock event channels, and database failures turned into `LockDatabaseError`. A caller told that an
 * acquisition failed is left no lock, even if the database commits it late.
 */
@Injectable()
export class LockOperations {
  readonly requests: LockRequests;
  /** Milliseconds on a scale that moves as the store's clock does: how handles tell what is left of a lease between calls. */
  readonly elapsed: () => number;
  /** Aborted when the application starts shutting down: waits for a lock end there. */
  private readonly shuttingDown = new AbortController();
  /** Aborted once shutdown has let go of the app's locks and closed the store. */
  private readonly closing = new AbortController();
  /** Set as the store starts closing: from then on nothing may take a lock through this app. */
  private closeBegun = false;
  private readonly abandoned: AbandonedLocks;

  constructor(
    @Inject(LOCK_DIALECT) readonly dialect: LockDialect,
    @Inject(LOCKMGR_OPTIONS) readonly options: ResolvedLockMgrOptions,
  ) {
    this.requests = new LockRequests(dialect, options);
    this.elapsed = dialect.clock ? () => dialect.clock!() : () => performance.now();
    // Every waiting acquisition listens to it while it sleeps: many at once are expected, not a leak.
    setMaxListeners(0, this.shuttingDown.signal);
    // A statement the client gave up on ends on the server within the operation timeout (a server-side limit).
    this.abandoned = new AbandonedLocks(dialect, options.operationTimeout * 1000 + SETTLE_MARGIN_MS);
  }

  /** The lock table, named in lock events. */
  get tableName(): string {
    return this.options.tableName;
  }

  /** Aborted at the very end of shutdown, once no lock is held through this app and its store is closed. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  /**
   * Tries to take a lock until it succeeds or `wait` runs out. Between attempts it sleeps until a release
   * wakes it, the holder's lease ends, or a poll is due (backing off, with jitter). A wait goes on through
   * failed database calls; it throws `LockDatabaseError` only if no attempt reached the database.
   */
  async acquire(attempt: AcquireAttempt): Promise<LockEntity | LockedError> {
    if (!acquisitionEnded.hasSubscribers) return this.attempt(attempt);
    const calledAt = performance.now();
    const ended = (outcome: 'acquired' | 'locked' | 'error') =>
      acquisitionEnded.publish({ table: this.tableName, outcome, seconds: secondsSince(calledAt) });
    try {
      const lock = await this.attempt(attempt);
      ended(lock instanceof LockedError ? 'locked' : 'acquired');
      return lock;
    } catch (error) {
      ended('error');
      throw error;
    }
  }

  /** The wait loop of `acquire`. */
  private async attempt({ request, wait, signal }: AcquireAttempt): Promise<LockEntity | LockedError> {
    signal?.throwIfAborted();
    if (this.closeBegun) throw new LockMgrError(`Could not acquire lock "${request.name}": the app's lock module has shut down.`);
    const startedAt = performance.now();
    const giveUpAt = startedAt + wait * 1000;
    const shutdown = this.shuttingDown.signal;
    /** What the latest attempt that reached the database learned of the holder; undefined while none has. */
    let holder: HolderInfo | null | undefined;
    let failure: unknown;
    let waiting: ReleaseWaiting | undefined;
    let stopWaiting: AbortSignal | undefined;
    try {
      for (let attempt = 0; ; attempt++) {
        // A token per attempt: the clean-up of a failed attempt must never release the lock of a later one.
        const attemptRequest = attempt === 0 ? { ...request, waits: wait > 0 } : { ...request, owner: randomUUID(), place: waiting?.place };
        const requestedAt = this.elapsed();
        const sentAt = performance.now();
        try {
          const result = await this.dialect.acquire(attemptRequest);
          if (result.acquired) {
            this.announceAcquired(result.lock, startedAt);
            return this.handle(result.lock, requestedAt, sentAt);
          }
          holder = result.holder;
          waiting ??= result.waiting;
        } catch (error) {
          // The caller will hear that this attempt failed, but the database may still commit it.
          this.abandoned.abandon(request.name, attemptRequest.owner);
          failure = error;
        }
        const now = performance.now();
        // An app that is shutting down stops waiting, so that it neither takes up new work nor delays its exit.
        if (now >= giveUpAt || shutdown.aborted) return this.handedOver(waiting, startedAt) ?? this.endOfWait(request.name, holder, failure);
        waiting ??= this.dialect.subscribe(request);
        stopWaiting ??= signal ? AbortSignal.any([signal, shutdown]) : shutdown;
        const pause = Math.min(giveUpAt - now, this.pollDelay(attempt), this.untilExpiry(holder ?? null));
        try {
          await waiting.sleep(pause, stopWaiting);
        } catch (error) {
          if (signal?.aborted && error === signal.reason) throw error;
          return this.endOfWait(request.name, holder, failure);
        }
        const handedOver = this.handedOver(waiting, startedAt);
        if (handedOver) return handedOver;
      }
    } finally {
      waiting?.close();
    }
  }

  /** The handle of a lock a release handed over to the wait, if one did: its lease counts from before the hand-over. */
  private handedOver(waiting: ReleaseWaiting | undefined, startedAt: number): LockEntity | undefined {
    const handedOver = waiting?.handedOver?.();
    if (!handedOver) return undefined;
    this.announceAcquired(handedOver.lock, startedAt);
    return this.handle(handedOver.lock, handedOver.requestedAt, performance.now());
  }

  /**
   * Moves the expiry of a lock: through a handle only while it owns the lock (`handle` carries when it was
   * taken), by name whoever holds it. Null when it is not held (by that owner). A renewal by name returns
   * a description: the lock may be another's.
   */
  async renew({ name, owner }: ReleaseRequest, expires: number | null, mode: RenewMode, handle?: LockEntity): Promise<LockEntity | null> {
    const requestedAt = this.elapsed();
    const renewed = await this.database(`renew lock "${name}"`, name, this.dialect.renew({ name, owner, expires, mode }));
    if (!renewed) return null;
    this.announceRenewed(renewed);
    return owner === null ? this.description(renewed, requestedAt) : this.handle(renewed, requestedAt, handle?.takenAt);
  }

  /**
   * The handle of a lock this process owns, from a record read by a call sent at `requestedAt` (a reading
   * of `elapsed`). `takenAt` is the `performance.now()` at which this process took the lock, if it did.
   */
  handle(record: LockRecord, requestedAt: number, takenAt?: number): LockEntity {
    return LockEntity.fromRecord(record, { requestedAt, elapsed: this.elapsed, takenAt, owned: true });
  }

  /**
   * A lock that may be another's, without its owner token: whoever is handed it (a log, a caller that lost
   * a race) can read who holds it, and cannot pass it to an owner-checked release or renewal.
   */
  description(record: LockRecord, requestedAt: number): LockEntity {
    return LockEntity.fromRecord(record, { requestedAt, elapsed: this.elapsed, owned: false });
  }

  /**
   * Lets go of a lock: through a handle only while it owns the lock, by name whoever holds it. With
   * `keepFor` seconds (what is left of `minHold`), the lock stays taken until then instead of being
   * deleted. False when nothing was released.
   */
  async release({ name, owner }: ReleaseRequest, handle?: LockEntity, keepFor = 0): Promise<boolean> {
    const action = `release lock "${name}"`;
    let keptUntil: Date | null = null;
    let released: boolean;
    if (keepFor > 0) {
      const kept = await this.database(action, name, this.dialect.renew({ name, owner, expires: keepFor, mode: 'set' }));
      released = kept !== null;
      keptUntil = kept?.lockedUntil ?? null;
    } else {
      const releasing = this.dialect.release({ name, owner });
      // The caller hears that the release failed, but what it asked for still holds: the lock, if the
      // database kept it, is let go by its owner token as soon as the database answers, not at the end of its lease.
      // Once shutdown has begun, it lets go of the app's locks itself, and nothing may outlive it.
      if (owner !== null) releasing.catch(() => this.shuttingDown.signal.aborted || this.abandoned.abandon(name, owner));
      released = await this.database(action, name, releasing);
    }
    if (released && lockChannels.released.hasSubscribers) {
      lockChannels.released.publish({
        table: this.tableName,
        name,
        fencingToken: handle?.fencingToken ?? null,
        held: heldSeconds(handle),
        forced: owner === null,
        keptUntil,
      });
    }
    return released;
  }

  /**
   * Lets go of locks this process will not hold any more, whatever becomes of operations on them still
   * under way: each is released by its owner token now, and again once they can no longer commit.
   */
  abandon(...locks: Pick<LockEntity, 'name' | 'owner'>[]): void {
    // A description has no owner token: nothing of this process to let go of.
    for (const { name, owner } of locks) if (owner !== null) this.abandoned.abandon(name, owner);
  }

  /** The cheapest read that needs the lock table: a primary-key lookup of a name no lock can have (names are never empty). */
  async readTable(): Promise<void> {
    await this.database(`read the lock table "${this.tableName}"`, undefined, this.dialect.find(''));
  }

  /** A database failure becomes a `LockDatabaseError` saying what could not be done. */
  async database<T>(action: string, lockName: string | undefined, operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      if (error instanceof LockMgrError) throw error;
      throw new LockDatabaseError(lockName, action, error);
    }
  }

  announceAcquired(record: LockRecord, startedAt: number): void {
    if (!lockChannels.acquired.hasSubscribers) return;
    lockChannels.acquired.publish({ table: this.tableName, ...leaseOf(record), lockedBy: record.lockedBy, waited: secondsSince(startedAt) });
  }

  announceRenewed(record: LockRecord): void {
    if (!lockChannels.renewed.hasSubscribers) return;
    lockChannels.renewed.publish({ table: this.tableName, ...leaseOf(record) });
  }

  /** Aborted when the application starts shutting down. */
  get stopping(): AbortSignal {
    return this.shuttingDown.signal;
  }

  /** The first step of shutting down: acquisitions still waiting for a lock give up, as if their `wait` had run out. */
  stopWaiting(): void {
    this.shuttingDown.abort();
  }

  /** The last step of shutting down, once no lock is held through this app any more. */
  async close(): Promise<void> {
    this.closeBegun = true;
    try {
      await this.abandoned.close();
      await this.dialect.close();
    } finally {
      this.closing.abort();
    }
  }

  /**
   * How a wait that got no lock ends: `LockedError` once any attempt reached the database and found the
   * lock held, even if later attempts failed; a database error only if none ever reached it.
   */
  private endOfWait(name: string, holder: HolderInfo | null | undefined, failure: unknown): LockedError {
    if (holder === undefined) throw new LockDatabaseError(name, `acquire lock "${name}"`, failure);
    return new LockedError(name, holder);
  }

  /**
   * Where releases are announced, polling is a safety net at the `pollInterval`; elsewhere it is how
   * releases are found, so it starts fast and backs off to it. Jitter keeps waiters that failed
   * together from all coming back together.
   */
  private pollDelay(attempt: number): number {
    const longest = this.options.pollInterval * 1000;
    const backoff = this.dialect.announcesReleases ? longest : Math.min(longest, FIRST_POLL_MS * 2 ** attempt);
    return backoff * (0.5 + Math.random() / 2);
  }

  /** Milliseconds until the holder's lease ends, by the database's clock (a little after, never before). */
  private untilExpiry(holder: HolderInfo | null): number {
    return untilLeaseEnds(holder?.secondsLeft ?? null);
  }
}
