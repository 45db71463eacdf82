import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationShutdown, OnModuleDestroy } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { AbandonedLocks } from './abandoned-locks';
import type { AcquireRequest, HolderInfo, LockDialect, ReleaseRequest, ReleaseWaiting, RenewMode } from './dialects/lock-dialect';
import { LockDatabaseError, LockedError, LockFailError, LockMgrError, LockNotFoundError } from './errors';
import { isLockHandle, LockEntity, LockRecord } from './lock.entity';
import { LockContext } from './lock-context';
import { heldSeconds, leaseOf, lockChannels, secondsSince } from './lock-events';
import { LockManager, LockManagerOptions } from './lock-manager';
import { LockSetResult, toLockSetResult } from './lock-set-result';
import { LOCK_DIALECT, LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import {
  checkBoolean,
  checkExpires,
  checkLockName,
  checkOptionalSeconds,
  checkOptions,
  checkProcessId,
  checkSignal,
  checkText,
  MAX_WAIT_SECONDS,
} from './validation';

/** Options of `getLock` and `tryLock` (django-lockmgr's `get_lock` arguments, plus waiting). */
export interface GetLockOptions {
  /** Lease in seconds (fractions allowed); 0 or null: never expires. Default: the module's `defaultExpires`. */
  expires?: number | null;
  /** Recorded as `locked_by`. Default: the module's `lockedBy` (the host name). */
  lockedBy?: string;
  /** Recorded as `lock_process`. Default: `process.pid`. */
  lockProcess?: number | null;
  /** Keep trying for up to this many seconds while the lock is held elsewhere. Default: do not wait. */
  wait?: number;
  /** Cancels a wait: the call rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** Options of `renewLock` (django-lockmgr's `renew_lock` arguments). */
export interface RenewLockOptions {
  /** Seconds from now (or added, with `addTime`); 0 or null: never expires. Default: the module's `defaultExpires`. */
  expires?: number | null;
  /** Add `expires` to the current expiry instead of setting it to now + `expires`. Default false. */
  addTime?: boolean;
  /** Take the lock afresh when it is missing or expired, instead of throwing `LockNotFoundError`. Default false. */
  create?: boolean;
  /** Used when `create` takes the lock afresh. */
  lockedBy?: string;
  /** Used when `create` takes the lock afresh. */
  lockProcess?: number | null;
}

/** Options of `setLock` (django-lockmgr's `set_lock` arguments). */
export interface SetLockOptions {
  /** Lease of created and renewed locks, in seconds; 0 or null: never expires. Default: the module's `defaultExpires`. */
  timeout?: number | null;
  /** All or nothing: if any name is already locked, throw `LockFailError` and keep none of the locks created. Default false. */
  fail?: boolean;
  /** Extend the names that are already locked. Default true. */
  renew?: boolean;
  /** Lock the names that are free. Default true. */
  create?: boolean;
  lockedBy?: string;
  lockProcess?: number | null;
}

const GET_LOCK_OPTIONS = ['expires', 'lockedBy', 'lockProcess', 'wait', 'signal'] as const;
const RENEW_LOCK_OPTIONS = ['expires', 'addTime', 'create', 'lockedBy', 'lockProcess'] as const;
const SET_LOCK_OPTIONS = ['timeout', 'fail', 'renew', 'create', 'lockedBy', 'lockProcess'] as const;
const MANAGER_OPTIONS = [...GET_LOCK_OPTIONS, 'autoRenew', 'minHold'] as const;

/**
 * @internal The checks of manager options that need neither the database nor the module's options,
 * so that `@WithLock` can run them when it decorates a method, long before the first call.
 */
export function checkManagerOptions(
  options: unknown,
  caller: string,
  known: readonly (keyof LockManagerOptions)[] = MANAGER_OPTIONS,
): { lockOptions: GetLockOptions; autoRenew: boolean; minHold: number } {
  const { autoRenew, minHold, ...lockOptions } = checkOptions<LockManagerOptions>(options, `${caller} options`, known);
  if (lockOptions.expires !== undefined) checkExpires(lockOptions.expires, `${caller} option expires`);
  checkOptionalSeconds(lockOptions.wait, `${caller} option wait`, MAX_WAIT_SECONDS);
  return {
    lockOptions,
    autoRenew: checkBoolean(autoRenew, `${caller} option autoRenew`) ?? true,
    minHold: checkOptionalSeconds(minHold, `${caller} option minHold`) ?? 0,
  };
}

/** @internal How a locked run ended: the work's value, or the `LockedError` of an acquisition that found the lock held. */
export type LockedRun<T> = { value: T } | { locked: LockedError };

/** Where releases are not announced, polling starts this short and backs off to the `pollInterval` option. */
const FIRST_POLL_MS = 25;
/** Added to the operation timeout before an abandoned lock is released for the last time: network and scheduling delays. */
const SETTLE_MARGIN_MS = 1000;
/** Expired rows deleted per statement, so a clean-up never holds many row locks at once. */
const CLEANUP_BATCH = 1000;

/** A checked acquisition: what to write, and how long to keep trying. */
export interface AcquireAttempt {
  request: AcquireRequest;
  /** Seconds to keep trying; 0: one attempt. */
  wait: number;
  signal?: AbortSignal;
}

/**
 * django-lockmgr's functions, for the lock table in the app's own database. Every operation runs on
 * a connection of its own, outside any transaction of the caller, and reads the database's clock.
 */
@Injectable()
export class LockService implements OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('LockService');
  /** Managers handed out by `manager()`: released at shutdown if their owner did not release them. */
  private readonly managers = new Set<LockManager>();
  /** Runs of `withLock` and `@WithLock` in progress, with their lock names: shutdown waits for them. */
  private readonly runs = new Map<Promise<unknown>, string>();
  /** Aborted when the application starts shutting down: waits for a lock end there. */
  private readonly shuttingDown = new AbortController();
  private readonly abandoned: AbandonedLocks;

  /** @internal Nest creates the service; inject it. */
  constructor(
    @Inject(LOCK_DIALECT) private readonly dialect: LockDialect,
    @Inject(LOCKMGR_OPTIONS) private readonly options: ResolvedLockMgrOptions,
  ) {
    // Every waiting acquisition listens to it while it sleeps: many at once are expected, not a leak.
    setMaxListeners(0, this.shuttingDown.signal);
    // A statement the client gave up on ends on the server within the operation timeout (a server-side limit).
    this.abandoned = new AbandonedLocks(dialect, options.operationTimeout * 1000 + SETTLE_MARGIN_MS);
  }

  /**
   * Takes the lock `name`, or throws `LockedError` if it is held (after waiting up to `wait` seconds). A
   * wait goes on through failed database calls; it throws `LockDatabaseError` only if no attempt reached
   * the database. A caller told the call failed is left no lock, even if the database commits it late.
   */
  async getLock(name: string, options?: GetLockOptions): Promise<LockEntity> {
    const lock = await this.acquire(this.checkAcquire(name, options, 'getLock'));
    if (lock instanceof LockedError) throw lock;
    return lock;
  }

  /** Like `getLock`, but resolves to null instead of throwing when the lock is held. */
  async tryLock(name: string, options?: GetLockOptions): Promise<LockEntity | null> {
    const lock = await this.acquire(this.checkAcquire(name, options, 'tryLock'));
    return lock instanceof LockedError ? null : lock;
  }

  /**
   * Releases a lock. Through a handle, only if that handle still owns it (a stale handle never releases
   * the lock of whoever took over); by name, whoever holds it (a force release). False when nothing was released.
   */
  async unlock(lock: LockEntity | string): Promise<boolean> {
    const reference = this.checkLockReference(lock, 'unlock');
    return this.release(reference, typeof lock === 'string' ? undefined : lock, 0);
  }

  /**
   * Extends a lock, never shortening it: to now + `expires`, or by `expires` with `addTime`. Through a
   * handle, only if it still owns the lock. Throws `LockNotFoundError` when the lock is missing or
   * expired, unless `create` takes it afresh (then `LockedError` if someone else holds it).
   */
  async renewLock(lock: LockEntity | string, options?: RenewLockOptions): Promise<LockEntity> {
    const { name, owner } = this.checkLockReference(lock, 'renewLock');
    const given = checkOptions<RenewLockOptions>(options, 'renewLock options', RENEW_LOCK_OPTIONS);
    const expires = this.checkLease(given.expires, 'renewLock option expires');
    const addTime = checkBoolean(given.addTime, 'renewLock option addTime') ?? false;
    const create = checkBoolean(given.create, 'renewLock option create') ?? false;
    const creation = this.checkRequest(name, expires, given, 'renewLock');
    const renewed = await this.renew({ name, owner }, expires, addTime ? 'add' : 'extend', typeof lock === 'string' ? undefined : lock);
    if (renewed) return renewed;
    if (!create) throw new LockNotFoundError(name);
    const created = await this.acquire({ request: creation, wait: 0 });
    if (created instanceof LockedError) throw created;
    return created;
  }

  /** Whether `name` (or the name of a handle) is held by anyone right now. */
  async isLocked(lock: LockEntity | string): Promise<boolean> {
    const { name } = this.checkLockReference(lock, 'isLocked');
    return (await this.database(`look up lock "${name}"`, name, this.dialect.find(name))) !== null;
  }

  /**
   * Creates and renews several locks in one transaction (django-lockmgr's `set_lock`). Renewing never
   * shortens a lock. With `fail: true` it is all or nothing: the first name already locked aborts
   * the call with `LockFailError`, and none of the locks it created remains.
   */
  async setLock(names: string | string[], options?: SetLockOptions): Promise<LockSetResult> {
    const list = typeof names === 'string' ? [names] : names;
    if (!Array.isArray(list)) throw new TypeError('setLock names must be a lock name or an array of lock names.');
    if (list.length === 0) throw new RangeError('setLock names must hold at least one lock name.');
    const given = checkOptions<SetLockOptions>(options, 'setLock options', SET_LOCK_OPTIONS);
    const expires = this.checkLease(given.timeout, 'setLock option timeout');
    const fail = checkBoolean(given.fail, 'setLock option fail') ?? false;
    const renew = checkBoolean(given.renew, 'setLock option renew') ?? true;
    const create = checkBoolean(given.create, 'setLock option create') ?? true;
    const distinct = [...new Set(list.map((name, index) => this.checkName(name, `setLock names[${index}]`)))];
    const locks = distinct.map((name) => this.checkRequest(name, expires, given, 'setLock'));
    const requestedAt = performance.now();
    const setting = this.dialect.setLocks({ locks, fail, renew, create }).catch((error: unknown) => {
      // The transaction may still commit after the client gave up on it.
      for (const lock of locks) this.abandoned.abandon(lock.name, lock.owner);
      throw error;
    });
    const result = await this.database(`set locks ${distinct.map((n) => `"${n}"`).join(', ')}`, undefined, setting);
    if ('conflict' in result) throw new LockFailError(LockEntity.fromRecord(result.conflict, requestedAt));
    for (const step of result.steps) {
      if (step.action === 'create') this.announceAcquired(step.lock!, requestedAt);
      if (step.action === 'extend') this.announceRenewed(step.lock!);
    }
    return toLockSetResult(result.steps, requestedAt);
  }

  /** Deletes the rows of expired locks and returns how many it deleted (expired locks count as free either way). */
  async cleanLocks(): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await this.database('delete expired locks', undefined, this.dialect.deleteExpired(CLEANUP_BATCH));
      total += deleted;
      if (deleted < CLEANUP_BATCH) return total;
    }
  }

  /** Every live lock, ordered by name. */
  async listLocks(): Promise<LockEntity[]> {
    const requestedAt = performance.now();
    return (await this.database('list locks', undefined, this.dialect.list())).map((record) => LockEntity.fromRecord(record, requestedAt));
  }

  /**
   * Takes `name` and returns a `LockManager` holding it (django-lockmgr's `LockMgr`). Its locks renew
   * themselves until it is released: `await using mgr = await locks.manager('x')`, or `mgr.release()`.
   */
  async manager(name: string, options?: LockManagerOptions): Promise<LockManager> {
    const manager = await this.openManager(name, options, 'manager');
    if (manager instanceof LockedError) throw manager;
    this.managers.add(manager);
    return manager;
  }

  /**
   * Runs `work` while holding `name`, renewing it as needed, and releases it when `work` settles.
   * Inside `work` (and whatever it calls), `LockContext.current()` describes the lock.
   */
  async withLock<T>(name: string, work: (manager: LockManager) => T | Promise<T>, options?: LockManagerOptions): Promise<T> {
    if (typeof work !== 'function') throw new TypeError('withLock work must be a function.');
    const outcome = await this.runLocked(name, options, work, 'withLock');
    if ('locked' in outcome) throw outcome.locked;
    return outcome.value;
  }

  /**
   * @internal What `withLock` and `@WithLock` share: runs `work` holding `name`, or resolves to the
   * `LockedError` of the acquisition when the lock is held elsewhere, so that a `LockedError` thrown
   * by `work` itself is never mistaken for it. Application shutdown waits for the run to settle.
   */
  runLocked<T>(name: unknown, options: unknown, work: (manager: LockManager) => T | Promise<T>, caller: string): Promise<LockedRun<T>> {
    const run = this.holdWhile(name, options, work, caller);
    this.runs.set(run, String(name));
    const forget = () => this.runs.delete(run);
    run.then(forget, forget);
    return run;
  }

  private async holdWhile<T>(
    name: unknown,
    options: unknown,
    work: (manager: LockManager) => T | Promise<T>,
    caller: string,
  ): Promise<LockedRun<T>> {
    const manager = await this.openManager(name, options, caller);
    if (manager instanceof LockedError) return { locked: manager };
    let value: T;
    try {
      value = await LockContext.run(manager, () => work(manager));
    } catch (error) {
      // The work's own error is the one worth seeing; a failed release only adds to it in the log.
      await manager.release().catch((releaseError) => this.logger.warn(`Releasing "${manager.mainLock.name}" failed: ${releaseError}`));
      throw error;
    }
    await manager.release();
    return { value };
  }

  private async openManager(name: unknown, options: unknown, caller: string): Promise<LockManager | LockedError> {
    const { lockOptions, autoRenew, minHold } = checkManagerOptions(options, caller);
    const attempt = this.checkAcquire(name, lockOptions, caller);
    const mainLock = await this.acquire(attempt);
    if (mainLock instanceof LockedError) return mainLock;
    const manager: LockManager = new LockManager(this, mainLock, {
      autoRenew,
      minHold,
      expires: attempt.request.expires,
      wait: attempt.wait,
      lockedBy: attempt.request.lockedBy,
      lockProcess: attempt.request.lockProcess,
      lossMargin: this.options.operationTimeout,
      onRelease: () => this.managers.delete(manager),
    });
    return manager;
  }

  /** @internal Checks the arguments of an acquisition, before any database call. */
  checkAcquire(name: unknown, options: unknown, caller: string): AcquireAttempt {
    const given = checkOptions<GetLockOptions>(options, `${caller} options`, GET_LOCK_OPTIONS);
    const checkedName = this.checkName(name, `${caller} name`);
    const expires = this.checkLease(given.expires, `${caller} option expires`);
    return {
      request: this.checkRequest(checkedName, expires, given, caller),
      wait: checkOptionalSeconds(given.wait, `${caller} option wait`, MAX_WAIT_SECONDS) ?? 0,
      signal: checkSignal(given.signal, `${caller} option signal`),
    };
  }

  /**
   * @internal Tries to take a lock until it succeeds or `wait` runs out. Between attempts it sleeps until
   * a release wakes it, the holder's lease ends, or a poll is due (backing off, with jitter).
   */
  async acquire({ request, wait, signal }: AcquireAttempt): Promise<LockEntity | LockedError> {
    signal?.throwIfAborted();
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
        const attemptRequest = attempt === 0 ? request : { ...request, owner: randomUUID() };
        const requestedAt = performance.now();
        try {
          const result = await this.dialect.acquire(attemptRequest);
          if (result.acquired) {
            this.announceAcquired(result.lock, startedAt);
            return LockEntity.fromRecord(result.lock, requestedAt, requestedAt);
          }
          holder = result.holder;
        } catch (error) {
          // The caller will hear that this attempt failed, but the database may still commit it.
          this.abandoned.abandon(request.name, attemptRequest.owner);
          failure = error;
        }
        const now = performance.now();
        // An app that is shutting down stops waiting, so that it neither takes up new work nor delays its exit.
        if (now >= giveUpAt || shutdown.aborted) return this.endOfWait(request.name, holder, failure);
        waiting ??= this.dialect.subscribe(request.name);
        stopWaiting ??= signal ? AbortSignal.any([signal, shutdown]) : shutdown;
        const pause = Math.min(giveUpAt - now, this.pollDelay(attempt), this.untilExpiry(holder ?? null));
        try {
          await waiting.sleep(pause, stopWaiting);
        } catch (error) {
          if (signal?.aborted && error === signal.reason) throw error;
          return this.endOfWait(request.name, holder, failure);
        }
      }
    } finally {
      waiting?.close();
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
    if (holder?.secondsLeft == null) return Infinity;
    return Math.max(0, holder.secondsLeft * 1000) + 1;
  }

  /** @internal Renews a handle that must still own its lock; null when it no longer does. */
  renewOwned(lock: LockEntity, expires: number | null, mode: Exclude<RenewMode, 'set'>): Promise<LockEntity | null> {
    return this.renew(lock, expires, mode, lock);
  }

  /**
   * @internal Lets go of a lock a manager holds. With `keepFor` seconds (what is left of `minHold`),
   * the lock stays taken until then instead of being deleted. False when the handle no longer owned it.
   */
  releaseOwned(lock: LockEntity, keepFor: number): Promise<boolean> {
    return this.release(lock, lock, keepFor);
  }

  /**
   * @internal Lets go of a lock this process will not hold any more, whatever becomes of operations on it
   * still under way: it is released by its owner token now, and again once they can no longer commit.
   */
  abandon(lock: LockEntity): void {
    this.abandoned.abandon(lock.name, lock.owner);
  }

  /** @internal The lock table, named in lock events. */
  get tableName(): string {
    return this.options.tableName;
  }

  /** @internal The cheapest read that needs the lock table: a primary-key lookup of a name no lock can have (names are never empty). */
  async readTable(): Promise<void> {
    await this.database(`read the lock table "${this.options.tableName}"`, undefined, this.dialect.find(''));
  }

  /** Every renewal goes through here, so each one is announced once. `handle` carries when the lock was taken. */
  private async renew(
    { name, owner }: ReleaseRequest,
    expires: number | null,
    mode: RenewMode,
    handle: LockEntity | undefined,
  ): Promise<LockEntity | null> {
    const requestedAt = performance.now();
    const renewed = await this.database(`renew lock "${name}"`, name, this.dialect.renew({ name, owner, expires, mode }));
    if (!renewed) return null;
    this.announceRenewed(renewed);
    return LockEntity.fromRecord(renewed, requestedAt, handle?.takenAt);
  }

  /** Every release goes through here, so each one is announced once. */
  private async release({ name, owner }: ReleaseRequest, handle: LockEntity | undefined, keepFor: number): Promise<boolean> {
    const action = `release lock "${name}"`;
    let keptUntil: Date | null = null;
    let released: boolean;
    if (keepFor > 0) {
      const kept = await this.database(action, name, this.dialect.renew({ name, owner, expires: keepFor, mode: 'set' }));
      released = kept !== null;
      keptUntil = kept?.lockedUntil ?? null;
    } else {
      released = await this.database(action, name, this.dialect.release({ name, owner }));
    }
    if (released && lockChannels.released.hasSubscribers) {
      lockChannels.released.publish({
        table: this.options.tableName,
        name,
        fencingToken: handle?.fencingToken ?? null,
        held: heldSeconds(handle),
        forced: owner === null,
        keptUntil,
      });
    }
    return released;
  }

  private announceAcquired(record: LockRecord, startedAt: number): void {
    if (!lockChannels.acquired.hasSubscribers) return;
    lockChannels.acquired.publish({ table: this.options.tableName, ...leaseOf(record), lockedBy: record.lockedBy, waited: secondsSince(startedAt) });
  }

  private announceRenewed(record: LockRecord): void {
    if (!lockChannels.renewed.hasSubscribers) return;
    lockChannels.renewed.publish({ table: this.options.tableName, ...leaseOf(record) });
  }

  /** A database failure becomes a `LockDatabaseError` saying what could not be done. */
  private async database<T>(action: string, lockName: string | undefined, operation: Promise<T>): Promise<T> {
    try {
      return await operation;
    } catch (error) {
      if (error instanceof LockMgrError) throw error;
      throw new LockDatabaseError(lockName, action, error);
    }
  }

  private checkName(name: unknown, argument: string): string {
    return checkLockName(name, argument, this.dialect.maxNameLength);
  }

  private checkLease(expires: unknown, argument: string): number | null {
    return expires === undefined ? this.options.defaultExpires : checkExpires(expires, argument);
  }

  private checkRequest(
    name: string,
    expires: number | null,
    given: { lockedBy?: unknown; lockProcess?: unknown },
    caller: string,
  ): AcquireRequest {
    const lockProcess = checkProcessId(given.lockProcess, `${caller} option lockProcess`);
    return {
      name,
      owner: randomUUID(),
      expires,
      lockedBy: checkText(given.lockedBy, `${caller} option lockedBy`) ?? this.options.lockedBy,
      lockProcess: lockProcess === undefined ? process.pid : lockProcess,
    };
  }

  private checkLockReference(lock: unknown, caller: string): { name: string; owner: string | null } {
    if (typeof lock === 'string') return { name: this.checkName(lock, `${caller} lock`), owner: null };
    if (isLockHandle(lock)) {
      const name = this.checkName(lock.name, `${caller} lock.name`);
      if (typeof lock.owner !== 'string' || lock.owner.length === 0) {
        throw new TypeError(`${caller} lock.owner must be the owner token of a lock handle.`);
      }
      return { name, owner: lock.owner };
    }
    throw new TypeError(`${caller} lock must be a lock name or a LockEntity handle.`);
  }

  /** The first step of shutting down: acquisitions still waiting for a lock give up, as if their `wait` had run out. */
  onModuleDestroy(): void {
    this.shuttingDown.abort();
  }

  /**
   * Before the app's resources close: a running `withLock` or `@WithLock` keeps (and renews) its lock
   * until its work settles, so no work goes on unlocked; then the managers still open are released.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.settle();
  }

  /** Runs that began while the app was shutting down (requests the HTTP server was finishing) settle too. */
  async onApplicationShutdown(): Promise<void> {
    await this.settle();
    await this.abandoned.close();
    await this.dialect.close();
  }

  private async settle(): Promise<void> {
    if (this.runs.size > 0) {
      const names = [...new Set(this.runs.values())].map((name) => `"${name}"`).join(', ');
      this.logger.log(`Shutting down: waiting for the work holding ${names} to finish.`);
    }
    while (this.runs.size > 0) await Promise.allSettled([...this.runs.keys()]);
    const releases = [...this.managers].map((manager) =>
      manager.release().catch((error) => this.logger.warn(`Releasing "${manager.mainLock.name}" at shutdown failed: ${error}`)),
    );
    await Promise.all(releases);
  }
}
