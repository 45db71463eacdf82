import { BeforeApplicationShutdown, Injectable, OnApplicationShutdown, OnModuleDestroy } from '@nestjs/common';
import { LockedError, LockFailError, LockNotFoundError } from './errors';
import { LeaderCampaigns } from './leadership/leader-campaigns';
import type { LeadOptions, Leadership } from './leadership/leadership';
import { LockEntity } from './lock.entity';
import type { LockManager } from './lock-manager';
import { LockManagers } from './lock-managers';
import { GetLockOptions, LockManagerOptions, RENEW_LOCK_OPTIONS, RenewLockOptions, SET_LOCK_OPTIONS, SetLockOptions } from './lock-options';
import { LockOperations } from './lock-operations';
import { LockSetResult, toLockSetResult } from './lock-set-result';
import { checkBoolean, checkOptions } from './validation';

/** Expired rows deleted per statement, so a clean-up never holds many row locks at once. */
const CLEANUP_BATCH = 1000;

/**
 * django-lockmgr's functions, for the lock table in the app's own database. Every operation runs on
 * a connection of its own, outside any transaction of the caller, and reads the database's clock.
 * A database failure rejects with `LockDatabaseError`; it is never reported as "not locked".
 */
@Injectable()
export class LockService implements OnModuleDestroy, BeforeApplicationShutdown, OnApplicationShutdown {
  /** @internal Nest creates the service; inject it. */
  constructor(
    private readonly operations: LockOperations,
    private readonly managers: LockManagers,
    private readonly campaigns: LeaderCampaigns,
  ) {}

  /**
   * Takes the lock `name`, or throws `LockedError` if it is held (after waiting up to `wait` seconds). A
   * wait goes on through failed database calls; it throws `LockDatabaseError` only if no attempt reached
   * the database. A caller told the call failed is left no lock, even if the database commits it late.
   */
  async getLock(name: string, options?: GetLockOptions): Promise<LockEntity> {
    const lock = await this.operations.acquire(this.operations.requests.acquisition(name, options, 'getLock'));
    if (lock instanceof LockedError) throw lock;
    return lock;
  }

  /** Like `getLock`, but resolves to null instead of throwing when the lock is held. */
  async tryLock(name: string, options?: GetLockOptions): Promise<LockEntity | null> {
    const lock = await this.operations.acquire(this.operations.requests.acquisition(name, options, 'tryLock'));
    return lock instanceof LockedError ? null : lock;
  }

  /**
   * Releases a lock. Through a handle, only if that handle still owns it (a stale handle never releases
   * the lock of whoever took over); by name, whoever holds it (a force release). False when nothing was released.
   */
  async unlock(lock: LockEntity | string): Promise<boolean> {
    const reference = this.operations.requests.reference(lock, 'unlock');
    return this.operations.release(reference, typeof lock === 'string' ? undefined : lock);
  }

  /**
   * Extends a lock, never shortening it: to now + `expires`, or by `expires` with `addTime`. Through a
   * handle, only if it still owns the lock. Throws `LockNotFoundError` when the lock is missing or
   * expired, unless `create` takes it afresh (then `LockedError` if someone else holds it).
   */
  async renewLock(lock: LockEntity | string, options?: RenewLockOptions): Promise<LockEntity> {
    const { requests } = this.operations;
    const reference = requests.reference(lock, 'renewLock');
    const given = checkOptions<RenewLockOptions>(options, 'renewLock options', RENEW_LOCK_OPTIONS);
    const expires = requests.lease(given.expires, 'renewLock option expires');
    const addTime = checkBoolean(given.addTime, 'renewLock option addTime') ?? false;
    const create = checkBoolean(given.create, 'renewLock option create') ?? false;
    const creation = requests.acquireRequest(reference.name, expires, given, 'renewLock');
    const renewed = await this.operations.renew(reference, expires, addTime ? 'add' : 'extend', typeof lock === 'string' ? undefined : lock);
    if (renewed) return renewed;
    if (!create) throw new LockNotFoundError(reference.name);
    const created = await this.operations.acquire({ request: creation, wait: 0 });
    if (created instanceof LockedError) throw created;
    return created;
  }

  /** Whether `name` (or the name of a handle or description) is held by anyone right now. */
  async isLocked(lock: LockEntity | string): Promise<boolean> {
    const name = this.operations.requests.lockName(lock, 'isLocked');
    return (await this.operations.database(`look up lock "${name}"`, name, this.operations.dialect.find(name))) !== null;
  }

  /**
   * Creates and renews several locks in one transaction (django-lockmgr's `set_lock`). Renewing never
   * shortens a lock. With `fail: true` it is all or nothing: the first name already locked aborts
   * the call with `LockFailError`, and none of the locks it created remains.
   */
  async setLock(names: string | string[], options?: SetLockOptions): Promise<LockSetResult> {
    const { requests, dialect } = this.operations;
    const list = typeof names === 'string' ? [names] : names;
    if (!Array.isArray(list)) throw new TypeError('setLock names must be a lock name or an array of lock names.');
    if (list.length === 0) throw new RangeError('setLock names must hold at least one lock name.');
    const given = checkOptions<SetLockOptions>(options, 'setLock options', SET_LOCK_OPTIONS);
    const expires = requests.lease(given.timeout, 'setLock option timeout');
    const fail = checkBoolean(given.fail, 'setLock option fail') ?? false;
    const renew = checkBoolean(given.renew, 'setLock option renew') ?? true;
    const create = checkBoolean(given.create, 'setLock option create') ?? true;
    const distinct = [...new Set(list.map((name, index) => requests.name(name, `setLock names[${index}]`)))];
    const locks = distinct.map((name) => requests.acquireRequest(name, expires, given, 'setLock'));
    const requestedAt = this.operations.elapsed();
    const sentAt = performance.now();
    const setting = dialect.setLocks({ locks, fail, renew, create }).catch((error: unknown) => {
      // The transaction may still commit after the client gave up on it.
      this.operations.abandon(...locks);
      throw error;
    });
    const result = await this.operations.database(`set locks ${distinct.map((n) => `"${n}"`).join(', ')}`, undefined, setting);
    if ('conflict' in result) throw new LockFailError(this.operations.description(result.conflict, requestedAt));
    for (const step of result.steps) {
      if (step.action === 'create') this.operations.announceAcquired(step.lock!, requestedAt);
      if (step.action === 'extend') this.operations.announceRenewed(step.lock!);
    }
    // Only the names this call created are its own; a lock it found and renewed by name may be another's.
    return toLockSetResult(result.steps, (record, created) =>
      created ? this.operations.handle(record, requestedAt, sentAt) : this.operations.description(record, requestedAt),
    );
  }

  /** Deletes the rows of expired locks and returns how many it deleted (expired locks count as free either way). */
  async cleanLocks(): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await this.operations.database('delete expired locks', undefined, this.operations.dialect.deleteExpired(CLEANUP_BATCH));
      total += deleted;
      if (deleted < CLEANUP_BATCH) return total;
    }
  }

  /**
   * Every live lock, ordered by name, as descriptions: who holds each and until when, without owner
   * tokens, so a listing can be shown or logged. Release or renew a listed lock by its name.
   */
  async listLocks(): Promise<LockEntity[]> {
    const requestedAt = this.operations.elapsed();
    const records = await this.operations.database('list locks', undefined, this.operations.dialect.list());
    return records.map((record) => this.operations.description(record, requestedAt));
  }

  /**
   * Takes `name` and returns a `LockManager` holding it (django-lockmgr's `LockMgr`). Its locks renew
   * themselves until it is released: `await using mgr = await locks.manager('x')`, or `mgr.release()`.
   * Application shutdown releases a manager its owner did not release.
   */
  async manager(name: string, options?: LockManagerOptions): Promise<LockManager> {
    const manager = await this.managers.openManager(name, options, 'manager');
    if (manager instanceof LockedError) throw manager;
    return manager;
  }

  /**
   * Runs `work` while holding `name`, renewing it as needed, and releases it when `work` settles.
   * Inside `work` (and whatever it calls), `LockContext.current()` describes the lock. Application
   * shutdown waits for `work` to settle, keeping the lock until then.
   */
  async withLock<T>(name: string, work: (manager: LockManager) => T | Promise<T>, options?: LockManagerOptions): Promise<T> {
    if (typeof work !== 'function') throw new TypeError('withLock work must be a function.');
    const outcome = await this.managers.run(name, options, work, 'withLock');
    if ('locked' in outcome) throw outcome.locked;
    return outcome.value;
  }

  /**
   * Campaigns in the background for the leadership of `name`: at most one instance leads it at any
   * moment (see `Leadership`). One app has one leadership per name: calling `lead` again with the same
   * options returns the same `Leadership` (other options throw), until it resigns. Application shutdown
   * resigns it.
   */
  lead(name: string, options?: LeadOptions): Leadership {
    return this.campaigns.lead(name, options, 'lead');
  }

  /**
   * The first step of shutting down: campaigns for leadership stop, and acquisitions still waiting for a
   * lock give up, as if their `wait` had run out.
   */
  onModuleDestroy(): void {
    this.campaigns.halt();
    this.operations.stopWaiting();
  }

  /**
   * Before the app's resources close: leaders resign; a running `withLock` or `@WithLock` keeps (and
   * renews) its lock until its work settles, so no work goes on unlocked; then the managers still open are released.
   */
  async beforeApplicationShutdown(): Promise<void> {
    await this.campaigns.resignAll();
    await this.managers.settle();
  }

  /** Runs that began while the app was shutting down (requests the HTTP server was finishing) settle too. */
  async onApplicationShutdown(): Promise<void> {
    await this.managers.settle();
    await this.operations.close();
  }
}
