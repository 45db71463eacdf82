import type { LockRecord } from '../lock.entity';

/** What an acquisition writes. */
export interface AcquireRequest {
  name: string;
  owner: string;
  /** Lease in seconds, or null for a lock that never expires. */
  expires: number | null;
  lockedBy: string | null;
  lockProcess: number | null;
}

/** A row of the lock table as the PostgreSQL and MySQL drivers return it, with `seconds_left` measured by the query. */
export interface LockRow {
  name: string;
  owner: string;
  /** A string where the driver returns bigints as strings. */
  fencing_token: string | number;
  locked_by: string | null;
  lock_process: number | null;
  locked_until: Date | null;
  created_at: Date;
  updated_at: Date;
  seconds_left: number | null;
}

export function recordFromRow(row: LockRow): LockRecord {
  return {
    name: row.name,
    owner: row.owner,
    fencingToken: Number(row.fencing_token),
    lockedBy: row.locked_by,
    lockProcess: row.lock_process,
    lockedUntil: row.locked_until,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    secondsLeft: row.seconds_left,
  };
}

/** What a failed acquisition learns of the holder, so waiters can wake when the lease runs out. */
export interface HolderInfo {
  lockedBy: string | null;
  lockedUntil: Date | null;
  /** Seconds left by the database's clock; null when the lock never expires. */
  secondsLeft: number | null;
}

export function holderOf(row: Pick<LockRow, 'locked_by' | 'locked_until' | 'seconds_left'>): HolderInfo {
  return { lockedBy: row.locked_by, lockedUntil: row.locked_until, secondsLeft: row.seconds_left };
}

/** The columns nestjs-lockmgr adds to django-lockmgr's table, on every database. */
export const OUR_COLUMNS: readonly string[] = ['owner', 'fencing_token'];

/** Which of `ours` the table's `columns` lack. */
export function missingColumns(columns: string[], ours: readonly string[] = OUR_COLUMNS): string[] {
  return ours.filter((column) => !columns.includes(column));
}

/**
 * What `inspectTable` concludes from the names of the columns it found: it throws when the table is
 * missing, and when it lacks our columns (a django-lockmgr table not completed yet). `cannotComplete`
 * is the reason a database cannot complete such a table; without it, the error says how to.
 */
export function checkTableColumns(table: string, columns: string[], cannotComplete?: string): void {
  if (columns.length === 0) {
    throw new Error(
      `The lock table ${table} does not exist. Turn on the ensureTable option, or add the lock table migration to your migrations.`,
    );
  }
  const missing = missingColumns(columns).join(', ');
  if (!missing) return;
  if (cannotComplete) throw new Error(`The table ${table} lacks the columns ${missing} (it was likely created by django-lockmgr). ${cannotComplete}`);
  throw new Error(`The lock table ${table} lacks the columns ${missing}. Turn on the ensureTable option, or run the lock table migration, to add them.`);
}

export type AcquireResult =
  | { acquired: true; lock: LockRecord }
  /** `holder` is null when the holder committed after this statement's snapshot, so its row was not visible. */
  | { acquired: false; holder: HolderInfo | null };

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

/** What to do with one name of `setLock`, given the live lock found on it (shared by every dialect). */
export function planSetLock(existing: LockRecord | null, request: SetLocksRequest): SetLockAction | 'fail' {
  if (existing) {
    if (request.fail) return 'fail';
    return request.renew ? 'extend' : 'skip';
  }
  return request.create ? 'create' : 'skip';
}

/** A waiting acquirer's sleeps between attempts; `close` when the wait ends. */
export interface ReleaseWaiting {
  /** Resolves when `name` may have been released (by any process), or after `timeoutMs`; rejects when `signal` aborts. */
  sleep(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * The locks of a `setLocks` request in one fixed order, the order its row locks are taken in: two
 * concurrent setLock calls then never wait on each other in a cycle.
 */
export function inLockingOrder(locks: AcquireRequest[]): AcquireRequest[] {
  return [...locks].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The small surface every database implements. Each method is one short transaction of its own, on a
 * connection no caller transaction can be using, and reads time from the database's clock only.
 * Records returned describe live locks only: an expired row is treated as absent everywhere.
 */
export interface LockDialect {
  /** The longest lock name the table's `name` column holds. */
  readonly maxNameLength: number;
  /**
   * Whether releases in other processes wake this process's waiters (PostgreSQL's NOTIFY). Then polling
   * is only a safety net; otherwise it is how other processes' releases are found, so it starts fast.
   */
  readonly announcesReleases: boolean;
  /** Creates or completes the lock table; safe when many instances start at once. */
  ensureTable(): Promise<void>;
  /** Reads the table's shape (such as `maxNameLength`); called once at start-up, after `ensureTable` if enabled. */
  inspectTable(): Promise<void>;
  acquire(request: AcquireRequest): Promise<AcquireResult>;
  /** Whether a live lock was released. */
  release(request: ReleaseRequest): Promise<boolean>;
  /** The renewed lock, or null when it is not held (by that owner). */
  renew(request: RenewRequest): Promise<LockRecord | null>;
  find(name: string): Promise<LockRecord | null>;
  list(): Promise<LockRecord[]>;
  /** Deletes up to `limit` expired rows and says how many it deleted. */
  deleteExpired(limit: number): Promise<number>;
  setLocks(request: SetLocksRequest): Promise<SetLocksResult>;
  /** Starts a waiting acquirer's interest in releases of `name`, for the rest of its wait. */
  subscribe(name: string): ReleaseWaiting;
  close(): Promise<void>;
}
