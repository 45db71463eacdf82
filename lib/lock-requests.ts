import { randomUUID } from 'node:crypto';
import type { AcquireRequest, LockDialect, ReleaseRequest } from './dialects/lock-dialect';
import { isLockHandle, LockEntity } from './lock.entity';
import { GET_LOCK_OPTIONS, GetLockOptions } from './lock-options';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import { checkExpires, checkLockName, checkOptionalSeconds, checkOptions, checkProcessId, checkSignal, checkText, MAX_WAIT_SECONDS } from './validation';

/** A checked acquisition: what to write, and how long to keep trying. */
export interface AcquireAttempt {
  request: AcquireRequest;
  /** Seconds to keep trying; 0: one attempt. */
  wait: number;
  signal?: AbortSignal;
}

/**
 * Turns the arguments of a lock call into the request a dialect runs, filling in the module's defaults.
 * Every check runs before any database call and names the argument it refuses.
 */
export class LockRequests {
  constructor(
    private readonly dialect: LockDialect,
    private readonly options: ResolvedLockMgrOptions,
  ) {}

  /** The acquisition of `getLock`, `tryLock`, managers and `@WithLock`. */
  acquisition(name: unknown, options: unknown, caller: string): AcquireAttempt {
    const given = checkOptions<GetLockOptions>(options, `${caller} options`, GET_LOCK_OPTIONS);
    const checkedName = this.name(name, `${caller} name`);
    const expires = this.lease(given.expires, `${caller} option expires`);
    return {
      request: this.acquireRequest(checkedName, expires, given, caller),
      wait: checkOptionalSeconds(given.wait, `${caller} option wait`, MAX_WAIT_SECONDS) ?? 0,
      signal: checkSignal(given.signal, `${caller} option signal`),
    };
  }

  /** What to write for `name`, with a fresh owner token: the holder's name and process default to this app's. */
  acquireRequest(name: string, expires: number | null, given: { lockedBy?: unknown; lockProcess?: unknown }, caller: string): AcquireRequest {
    const lockProcess = checkProcessId(given.lockProcess, `${caller} option lockProcess`);
    return {
      name,
      owner: randomUUID(),
      expires,
      lockedBy: checkText(given.lockedBy, `${caller} option lockedBy`) ?? this.options.lockedBy,
      lockProcess: lockProcess === undefined ? process.pid : lockProcess,
    };
  }

  /**
   * A lock given by name (force: any holder) or by handle (only while that handle owns it). A description
   * (no owner token) is refused rather than taken for its name: a caller that meant an owner-checked call
   * must not force one.
   */
  reference(lock: unknown, caller: string): ReleaseRequest {
    if (typeof lock === 'string') return { name: this.name(lock, `${caller} lock`), owner: null };
    const name = this.lockName(lock, caller);
    const { owner } = lock as LockEntity;
    if (owner === null) {
      throw new TypeError(
        `${caller} lock describes lock "${name}" without an owner token (from listLocks, setLock, an error or a renewal by name), ` +
          `so it cannot act on it as its owner: pass the name to act on it whoever holds it.`,
      );
    }
    if (typeof owner !== 'string' || owner.length === 0) throw new TypeError(`${caller} lock.owner must be the owner token of a lock handle.`);
    return { name, owner };
  }

  /** The name of a lock given by name, by handle or by description. */
  lockName(lock: unknown, caller: string): string {
    if (typeof lock === 'string') return this.name(lock, `${caller} lock`);
    if (isLockHandle(lock)) return this.name(lock.name, `${caller} lock.name`);
    throw new TypeError(`${caller} lock must be a lock name or a LockEntity handle.`);
  }

  /** A lock name that fits the table's `name` column. */
  name(name: unknown, argument: string): string {
    return checkLockName(name, argument, this.dialect.maxNameLength);
  }

  /** A lease in seconds (null: never expires); the module's `defaultExpires` when not given. */
  lease(expires: unknown, argument: string): number | null {
    return expires === undefined ? this.options.defaultExpires : checkExpires(expires, argument);
  }
}
