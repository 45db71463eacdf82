import { LockedError, LockLostError, LockNotFoundError } from './errors';
import { isLockHandle, LockEntity } from './lock.entity';
import { heldSeconds, lockChannels } from './lock-events';
import type { GetLockOptions, LockService } from './lock.service';
import { checkBoolean, checkExpires, checkOptionalSeconds, checkOptions, MAX_WAIT_SECONDS } from './validation';

/** Options of `LockService.manager` and `withLock`. */
export interface LockManagerOptions extends GetLockOptions {
  /** Renew every held lock each `expires / 3` seconds while the manager holds it. Default true. */
  autoRenew?: boolean;
  /**
   * Keep the main lock at least this many seconds after it was taken, even when released sooner
   * (ShedLock's lockAtLeastFor), so an instance whose timer fires a little later does not run the job again.
   */
  minHold?: number;
}

/** Options of `LockManager.lock` (django-lockmgr's `LockMgr.lock` arguments). */
export interface ManagerLockOptions {
  /** Default: the manager's `expires`. */
  expires?: number | null;
  /** Resolve to false instead of throwing `LockedError` when the lock is held. Default false. */
  ret?: boolean;
  /** Default: the manager's `wait`. */
  wait?: number;
}

/** Options of `LockManager.renew` (django-lockmgr's `LockMgr.renew` defaults). */
export interface ManagerRenewOptions {
  /** Seconds to add (or from now, without `addTime`). Default 120. */
  expires?: number | null;
  /** Default true. */
  addTime?: boolean;
  /** Take the lock afresh if it was lost. Default true. */
  create?: boolean;
}

/** @internal What `LockService.manager` settled for the manager. */
export interface LockManagerSettings {
  expires: number | null;
  wait: number;
  lockedBy: string | null;
  lockProcess: number | null;
  autoRenew: boolean;
  minHold: number;
  onRelease: () => void;
}

interface HeldLock {
  lock: LockEntity;
  /** The lease the lock was taken with: what each automatic renewal extends it to. */
  expires: number | null;
  renewTimer?: NodeJS.Timeout;
  expiryTimer?: NodeJS.Timeout;
}

/** Renewals that fail (the database is unreachable) are retried at least this often until the lease ends. */
const RETRY_RENEWAL_MS = 1000;

/**
 * A group of locks taken together and released together (django-lockmgr's `LockMgr`): the main lock,
 * taken when the manager is made, and any taken later with `lock()`. While held, each lock renews
 * itself every `expires / 3` seconds; if one is lost anyway (its lease ran out while the process was
 * stalled or the database unreachable, or someone force-released it), `signal` aborts with `LockLostError`.
 */
export class LockManager implements AsyncDisposable {
  readonly #held = new Map<string, HeldLock>();
  readonly #lost = new AbortController();
  readonly #takenAt = performance.now();
  #mainLock: LockEntity;
  #released = false;

  /** @internal Made by `LockService.manager` and `withLock`. */
  constructor(
    private readonly service: LockService,
    mainLock: LockEntity,
    private readonly settings: LockManagerSettings,
  ) {
    this.#mainLock = mainLock;
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
    const given = checkOptions<ManagerLockOptions>(options, 'lock options', ['expires', 'ret', 'wait']);
    const ret = checkBoolean(given.ret, 'lock option ret') ?? false;
    const expires = given.expires === undefined ? this.settings.expires : checkExpires(given.expires, 'lock option expires');
    const wait = checkOptionalSeconds(given.wait, 'lock option wait', MAX_WAIT_SECONDS) ?? this.settings.wait;
    const attempt = this.service.checkAcquire(
      name,
      { expires, wait, lockedBy: this.settings.lockedBy ?? undefined, lockProcess: this.settings.lockProcess },
      'lock',
    );
    this.assertActive();
    if (this.#held.has(name)) return true;
    const lock = await this.service.acquire(attempt);
    if (lock instanceof LockedError) {
      if (ret) return false;
      throw lock;
    }
    this.hold(lock, expires);
    return true;
  }

  /** Releases one of the manager's locks (the main lock by default); false if the manager did not hold it. */
  async unlock(name: string = this.#mainLock.name): Promise<boolean> {
    const held = this.#held.get(name);
    if (!held) return false;
    this.forget(name);
    return this.service.unlock(held.lock);
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
    const given = checkOptions<ManagerRenewOptions>(target === undefined ? lockOrOptions : options, 'renew options', [
      'expires',
      'addTime',
      'create',
    ]);
    const expires = given.expires === undefined ? 120 : checkExpires(given.expires, 'renew option expires');
    const addTime = checkBoolean(given.addTime, 'renew option addTime') ?? true;
    const create = checkBoolean(given.create, 'renew option create') ?? true;
    const name = target === undefined ? this.#mainLock.name : typeof target === 'string' ? target : target.name;
    this.assertActive();
    const held = this.#held.get(name);
    const renewed = held && (await this.service.renewOwned(held.lock, expires, addTime ? 'add' : 'extend'));
    if (renewed) {
      this.hold(renewed, held.expires);
      return renewed;
    }
    if (!create) throw new LockNotFoundError(name);
    const attempt = this.service.checkAcquire(
      name,
      { expires, lockedBy: this.settings.lockedBy ?? undefined, lockProcess: this.settings.lockProcess },
      'renew',
    );
    const lock = await this.service.acquire(attempt);
    if (lock instanceof LockedError) throw lock;
    this.hold(lock, held ? held.expires : expires);
    return lock;
  }

  /**
   * Releases every lock the manager still owns (a lock someone else took over is left alone), and
   * stops renewing them. With `minHold`, the main lock is kept until `minHold` seconds after it was taken.
   */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.settings.onRelease();
    const held = [...this.#held.values()];
    for (const { lock } of held) this.forget(lock.name);
    const holdFor = this.settings.minHold - (performance.now() - this.#takenAt) / 1000;
    const outcomes = await Promise.allSettled(
      held.map(({ lock }) => this.service.releaseOwned(lock, lock === this.#mainLock ? holdFor : 0)),
    );
    const errors = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason] : []));
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, 'Releasing the locks of a manager failed.');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.release();
  }

  private assertActive(): void {
    if (this.#released) throw new Error(`The lock manager of "${this.#mainLock.name}" was already released.`);
  }

  /** Records a lock as held and arms its renewal and its expiry. */
  private hold(lock: LockEntity, expires: number | null): void {
    this.forget(lock.name);
    if (lock.name === this.#mainLock.name) this.#mainLock = lock;
    const held: HeldLock = { lock, expires };
    this.#held.set(lock.name, held);
    const secondsLeft = lock.expiresSeconds;
    if (secondsLeft === null) return;
    // If no renewal lands before the lease ends, the lock is as good as lost: say so the moment it happens.
    held.expiryTimer = setTimeout(() => this.lose(lock.name, 'its lease ran out before a renewal could reach the database'), Math.max(0, secondsLeft * 1000));
    held.expiryTimer.unref();
    if (this.settings.autoRenew && expires !== null) this.scheduleRenewal(held, (expires * 1000) / 3);
  }

  private scheduleRenewal(held: HeldLock, delayMs: number): void {
    held.renewTimer = setTimeout(() => void this.autoRenew(held), delayMs);
    held.renewTimer.unref();
  }

  private async autoRenew(held: HeldLock): Promise<void> {
    const { lock, expires } = held;
    let renewed: LockEntity | null;
    try {
      renewed = await this.service.renewOwned(lock, expires, 'extend');
    } catch {
      // The database may come back before the lease ends; the expiry timer reports the loss if it does not.
      if (this.#held.get(lock.name) === held) this.scheduleRenewal(held, Math.min(RETRY_RENEWAL_MS, (expires! * 1000) / 3));
      return;
    }
    if (this.#held.get(lock.name) !== held) return;
    if (renewed) this.hold(renewed, expires);
    else this.lose(lock.name, 'its lease ran out, or someone force-released it');
  }

  private lose(name: string, reason: string): void {
    const held = this.#held.get(name);
    if (!held) return;
    this.forget(name);
    const error = new LockLostError(name, reason);
    if (lockChannels.lost.hasSubscribers) {
      const { lock } = held;
      lockChannels.lost.publish({ table: this.service.tableName, name, fencingToken: lock.fencingToken, held: heldSeconds(lock), error });
    }
    if (!this.#lost.signal.aborted) this.#lost.abort(error);
  }

  private forget(name: string): void {
    const held = this.#held.get(name);
    if (!held) return;
    clearTimeout(held.renewTimer);
    clearTimeout(held.expiryTimer);
    this.#held.delete(name);
  }
}
