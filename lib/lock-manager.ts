import { LockedError, LockLostError, LockNotFoundError } from './errors';
import { isLockHandle, LockEntity } from './lock.entity';
import { heldSeconds, lockChannels } from './lock-events';
import { LongTimer, setLongTimeout } from './long-timer';
import { lossMarginSeconds } from './loss-margin';
import { MANAGER_LOCK_OPTIONS, MANAGER_RENEW_OPTIONS, ManagerLockOptions, ManagerRenewOptions } from './lock-options';
import type { LockOperations } from './lock-operations';
import type { AcquireAttempt } from './lock-requests';
import { checkBoolean, checkExpires, checkOptionalSeconds, checkOptions, MAX_WAIT_SECONDS } from './validation';

/** @internal What `LockService.manager`, `withLock` and `@WithLock` settled for the manager. */
export interface LockManagerSettings {
  expires: number | null;
  wait: number;
  lockedBy: string | null;
  lockProcess: number | null;
  autoRenew: boolean;
  minHold: number;
  /**
   * Seconds before the end of a lease at which a lock whose renewals are failing is declared lost
   * (at most; a fifth of the lease for shorter leases): the longest a renewal may take to be confirmed.
   */
  lossMargin: number;
  onRelease: () => void;
}

interface HeldLock {
  lock: LockEntity;
  /** The lease the lock was taken with: what each automatic renewal extends it to. */
  expires: number | null;
  renewTimer?: LongTimer;
  expiryTimer?: LongTimer;
}

/** Renewals that fail (the database is unreachable) are retried at least this often until the lease ends. */
const RETRY_RENEWAL_MS = 1000;

/**
 * A group of locks taken together and released together (django-lockmgr's `LockMgr`): the main lock,
 * taken when the manager is made, and any taken later with `lock()`. While held, each lock renews
 * itself every `expires / 3` seconds. If one is lost anyway (someone force-released it, or its renewals
 * failed while the process was stalled or the database unreachable), `signal` aborts with `LockLostError`:
 * when renewals fail, that happens before the lease ends, by a margin of the module's `operationTimeout`
 * (a fifth of the lease when that is shorter), so the holder can stop before anyone else can take the lock.
 */
export class LockManager implements AsyncDisposable {
  readonly #held = new Map<string, HeldLock>();
  readonly #lost = new AbortController();
  /** Aborted by `release()`: a `lock()` or `renew()` still waiting for a lock gives up. */
  readonly #stopping = new AbortController();
  /** Lock operations under way: `release()` lets them finish before it lets go of the locks. */
  readonly #underWay = new Set<Promise<unknown>>();
  /** Locks declared lost by the end of their lease, which the manager may still own (someone extended them by name). */
  readonly #givenUp: LockEntity[] = [];
  /** When the main lock was taken, on the store's scale (`LockOperations.elapsed`): `minHold` counts from it. */
  readonly #takenAt: number;
  #mainLock: LockEntity;
  #released?: Promise<void>;

  /** @internal Made by `LockService.manager` and `withLock`. */
  constructor(
    private readonly operations: LockOperations,
    mainLock: LockEntity,
    private readonly settings: LockManagerSettings,
  ) {
    this.#mainLock = mainLock;
    this.#takenAt = operations.elapsed();
    this.hold(mainLock, settings.expires);
  }

  /** The lock taken when the manager was made (its latest handle, after renewals). */
  get mainLock(): LockEntity {
    return this.#mainLock;
  }

  /** The locks the manager holds now, the main lock first. */
  get locks(): LockEntity[] {
    return [...this.#held.values()].map((held) => held.lock);
  }

  /** The fencing token of the main lock: pass it to the resource you guard so it can refuse stale holders. */
  get fencingToken(): number {
    return this.#mainLock.fencingToken;
  }

  /** Aborts, with a `LockLostError` as its reason, when any lock of the manager is lost. */
  get signal(): AbortSignal {
    return this.#lost.signal;
  }

  /** Takes another lock into the manager. Resolves true; when it is held elsewhere, false with `ret`, else throws `LockedError`. */
  async lock(name: string, options?: ManagerLockOptions): Promise<boolean> {
    const given = checkOptions<ManagerLockOptions>(options, 'lock options', MANAGER_LOCK_OPTIONS);
    const ret = checkBoolean(given.ret, 'lock option ret') ?? false;
    const expires = given.expires === undefined ? this.settings.expires : checkExpires(given.expires, 'lock option expires');
    const wait = checkOptionalSeconds(given.wait, 'lock option wait', MAX_WAIT_SECONDS) ?? this.settings.wait;
    const attempt = this.operations.requests.acquisition(
      name,
      { expires, wait, lockedBy: this.settings.lockedBy ?? undefined, lockProcess: this.settings.lockProcess },
      'lock',
    );
    this.assertActive();
    // As in django-lockmgr, a name the manager holds is locked like any other: the database refuses it.
    // Only one attempt is made, since a wait for the manager's own lock could only run out.
    const lock = await this.acquire(this.#held.has(name) ? { ...attempt, wait: 0 } : attempt);
    if (lock instanceof LockedError) {
      if (ret) return false;
      throw lock;
    }
    this.keep(lock, expires);
    return true;
  }

  /** Releases one of the manager's locks (the main lock by default); false if the manager did not hold it. */
  async unlock(name: string = this.#mainLock.name): Promise<boolean> {
    const held = this.#held.get(name);
    if (!held) return false;
    this.forget(name);
    return this.operations.release(held.lock, held.lock);
  }

  /**
   * Adds time to one of the manager's locks (the main lock by default): `expires` seconds (120) added
   * to its expiry, or from now without `addTime`. A lock that was lost is taken afresh (`create`, the
   * default), which gives it a new fencing token; `LockedError` if someone else holds it by then.
   */
  async renew(options?: ManagerRenewOptions): Promise<LockEntity>;
  async renew(lock: string | LockEntity, options?: ManagerRenewOptions): Promise<LockEntity>;
  async renew(lockOrOptions?: string | LockEntity | ManagerRenewOptions, options?: ManagerRenewOptions): Promise<LockEntity> {
    const target = typeof lockOrOptions === 'string' || isLockHandle(lockOrOptions) ? lockOrOptions : undefined;
    const given = checkOptions<ManagerRenewOptions>(target === undefined ? lockOrOptions : options, 'renew options', MANAGER_RENEW_OPTIONS);
    const expires = given.expires === undefined ? 120 : checkExpires(given.expires, 'renew option expires');
    const addTime = checkBoolean(given.addTime, 'renew option addTime') ?? true;
    const create = checkBoolean(given.create, 'renew option create') ?? true;
    const name = target === undefined ? this.#mainLock.name : typeof target === 'string' ? target : target.name;
    this.assertActive();
    const held = this.#held.get(name);
    const renewed = held && (await this.underWay(this.operations.renew(held.lock, expires, addTime ? 'add' : 'extend', held.lock)));
    if (renewed) {
      // Released meanwhile: `release()` waited for this renewal and lets go of the lock itself.
      this.assertActive();
      if (this.#held.get(name) === held) {
        this.hold(renewed, held.expires);
        return renewed;
      }
      // Declared lost meanwhile: a lost lock stays lost, and is only ever taken afresh.
      this.operations.abandon(renewed);
    }
    if (!create) throw new LockNotFoundError(name);
    const attempt = this.operations.requests.acquisition(
      name,
      { expires, lockedBy: this.settings.lockedBy ?? undefined, lockProcess: this.settings.lockProcess },
      'renew',
    );
    const lock = await this.acquire(attempt);
    if (lock instanceof LockedError) throw lock;
    this.keep(lock, held ? held.expires : expires);
    return lock;
  }

  /**
   * Releases every lock the manager still owns (a lock someone else took over is left alone), and
   * stops renewing them. With `minHold`, the main lock is kept until `minHold` seconds after it was taken.
   */
  release(): Promise<void> {
    return (this.#released ??= this.releaseAll());
  }

  private async releaseAll(): Promise<void> {
    this.settings.onRelease();
    this.#stopping.abort(this.releasedError());
    for (const held of this.#held.values()) this.stopTimers(held);
    // A renewal still on its way would otherwise land after the release, and undo it or `minHold`.
    await Promise.allSettled(this.#underWay);
    const held = [...this.#held.values()];
    this.#held.clear();
    const holdFor = this.settings.minHold - (this.operations.elapsed() - this.#takenAt) / 1000;
    const outcomes = await Promise.allSettled(
      held.map(({ lock }) => this.operations.release(lock, lock, lock.name === this.#mainLock.name ? holdFor : 0)),
    );
    // Owner-checked, so a lock someone else took meanwhile is left alone.
    await Promise.all(this.#givenUp.map((lock) => this.operations.release(lock, lock).catch(() => this.operations.abandon(lock))));
    const errors = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'Releasing the locks of a manager failed.');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  private assertActive(): void {
    if (this.#released) throw this.releasedError();
  }

  private releasedError(): Error {
    return new Error(`The lock manager of "${this.#mainLock.name}" was already released.`);
  }

  /** Counts `operation` as under way until it settles, so that `release()` can wait for it. */
  private underWay<T>(operation: Promise<T>): Promise<T> {
    this.#underWay.add(operation);
    const settled = () => this.#underWay.delete(operation);
    operation.then(settled, settled);
    return operation;
  }

  /**
   * Takes a lock for the manager, giving up when the manager is released. A lock the database grants
   * after that is released before the call settles, so that `release()`, which waits for it, leaves none.
   */
  private acquire(attempt: AcquireAttempt): Promise<LockEntity | LockedError> {
    const acquisition = this.operations.acquire({ ...attempt, signal: this.#stopping.signal }).then(async (lock) => {
      if (lock instanceof LockEntity && this.#released) await this.operations.release(lock, lock).catch(() => this.operations.abandon(lock));
      return lock;
    });
    return this.underWay(acquisition);
  }

  /** Holds a lock just taken, unless the manager was released meanwhile (then the call fails). */
  private keep(lock: LockEntity, expires: number | null): void {
    this.assertActive();
    this.hold(lock, expires);
  }

  /** Records a lock as held and arms its renewal and its expiry. */
  private hold(lock: LockEntity, expires: number | null): void {
    this.forget(lock.name);
    if (lock.name === this.#mainLock.name) this.#mainLock = lock;
    const held: HeldLock = { lock, expires };
    this.#held.set(lock.name, held);
    const secondsLeft = lock.expiresSeconds;
    if (secondsLeft === null) return;
    // If no renewal lands in time, the holder must learn it while the lock is still its own.
    const margin = lossMarginSeconds(this.settings.lossMargin, expires ?? secondsLeft);
    held.expiryTimer = setLongTimeout(
      () => this.lose(lock.name, 'its lease was about to run out, and no renewal had reached the database'),
      (secondsLeft - margin) * 1000,
    );
    if (this.settings.autoRenew && expires !== null) this.scheduleRenewal(held, (expires * 1000) / 3);
  }

  private scheduleRenewal(held: HeldLock, delayMs: number): void {
    held.renewTimer = setLongTimeout(() => void this.autoRenew(held), delayMs);
  }

  private async autoRenew(held: HeldLock): Promise<void> {
    const { lock, expires } = held;
    let renewed: LockEntity | null;
    try {
      renewed = await this.underWay(this.operations.renew(lock, expires, 'extend', lock));
    } catch {
      // The database may come back before the lease ends; the expiry timer reports the loss if it does not.
      if (!this.#released && this.#held.get(lock.name) === held) {
        this.scheduleRenewal(held, Math.min(RETRY_RENEWAL_MS, (expires! * 1000) / 3));
      }
      return;
    }
    if (this.#released) return;
    if (this.#held.get(lock.name) !== held) {
      // Lost or unlocked while the renewal was on its way: the renewal must not keep the lock alive.
      if (renewed && this.#held.get(lock.name)?.lock.owner !== lock.owner) this.operations.abandon(renewed);
      return;
    }
    if (renewed) this.hold(renewed, expires);
    else this.lose(lock.name, 'its lease ran out, or someone force-released it');
  }

  private lose(name: string, reason: string): void {
    const held = this.#held.get(name);
    if (!held) return;
    this.forget(name);
    // With renewals failing, one may still land and keep the lock alive: it is let go of now. Without
    // them it stays until its lease ends (its holder chose that lease), or until the manager is released.
    if (this.settings.autoRenew && held.expires !== null) this.operations.abandon(held.lock);
    else this.#givenUp.push(held.lock);
    const error = new LockLostError(name, reason);
    if (lockChannels.lost.hasSubscribers) {
      const { lock } = held;
      lockChannels.lost.publish({ table: this.operations.tableName, name, fencingToken: lock.fencingToken, held: heldSeconds(lock), error });
    }
    if (!this.#lost.signal.aborted) this.#lost.abort(error);
  }

  private forget(name: string): void {
    const held = this.#held.get(name);
    if (!held) return;
    this.stopTimers(held);
    this.#held.delete(name);
  }

  private stopTimers(held: HeldLock): void {
    held.renewTimer?.clear();
    held.expiryTimer?.clear();
  }
}
