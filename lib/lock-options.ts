import { checkBoolean, checkExpires, checkOptionalSeconds, MAX_WAIT_SECONDS } from './validation';

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

/** How a manager treats its locks while it holds them: what `manager()`, `withLock` and `@WithLock` add to taking a lock. */
export interface ManagerHoldOptions {
  /** Renew every held lock each `expires / 3` seconds while the manager holds it. Default true. */
  autoRenew?: boolean;
  /**
   * Keep the main lock at least this many seconds after it was taken, even when released sooner
   * (ShedLock's lockAtLeastFor), so an instance whose timer fires a little later does not run the job again.
   */
  minHold?: number;
}

/** Options of `LockService.manager` and `withLock`. */
export interface LockManagerOptions extends GetLockOptions, ManagerHoldOptions {}

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

/** The option names each call accepts; any other name is refused before any database call. */
export const GET_LOCK_OPTIONS = ['expires', 'lockedBy', 'lockProcess', 'wait', 'signal'] as const;
export const RENEW_LOCK_OPTIONS = ['expires', 'addTime', 'create', 'lockedBy', 'lockProcess'] as const;
export const SET_LOCK_OPTIONS = ['timeout', 'fail', 'renew', 'create', 'lockedBy', 'lockProcess'] as const;
export const LOCK_MANAGER_OPTIONS = [...GET_LOCK_OPTIONS, 'autoRenew', 'minHold'] as const;
export const MANAGER_LOCK_OPTIONS = ['expires', 'ret', 'wait'] as const;
export const MANAGER_RENEW_OPTIONS = ['expires', 'addTime', 'create'] as const;

/** What a manager's options settle, before the lock is taken. */
export interface CheckedHoldOptions {
  autoRenew: boolean;
  minHold: number;
}

/**
 * Checks the values of the options a manager adds, and of its lease and wait, needing neither the
 * database nor the module's options: `@WithLock` runs it when it decorates a method, long before the
 * first call. Which option names are allowed is each caller's own list.
 */
export function checkHoldOptions(options: LockManagerOptions, caller: string): CheckedHoldOptions {
  if (options.expires !== undefined) checkExpires(options.expires, `${caller} option expires`);
  checkOptionalSeconds(options.wait, `${caller} option wait`, MAX_WAIT_SECONDS);
  return {
    autoRenew: checkBoolean(options.autoRenew, `${caller} option autoRenew`) ?? true,
    minHold: checkOptionalSeconds(options.minHold, `${caller} option minHold`) ?? 0,
  };
}
