import { ReleaseWaiters } from '../dialects/release-waiters';
import { LockClock, systemLockClock } from './lock-clock';

/** @internal A row of the in-memory lock table; times are milliseconds of the store's clock. */
export interface MemoryLockRow {
  name: string;
  owner: string;
  fencingToken: number;
  lockedBy: string | null;
  lockProcess: number | null;
  /** null: the lock never expires. */
  lockedUntil: number | null;
  createdAt: number;
  updatedAt: number;
}

/** Names in the order of the databases' binary collations: by UTF-8 bytes, which is by code point. */
function byName(a: MemoryLockRow, b: MemoryLockRow): number {
  // Not `<`: it compares UTF-16 units, which puts characters beyond U+FFFF before U+E000–U+FFFF.
  return Buffer.compare(Buffer.from(a.name), Buffer.from(b.name));
}

/**
 * The lock table of `nestjs-lockmgr/testing`, kept in memory: the rows, the fencing-token counter and the
 * clock that decides expiry. App instances given one store share its locks as instances sharing a
 * database do, and its fencing tokens grow for as long as the store lives.
 */
export class MemoryLockStore {
  /** @internal Waiting acquirers of every instance: all of them live in this process, so every release reaches them. */
  readonly waiters = new ReleaseWaiters();
  private readonly rows = new Map<string, MemoryLockRow>();
  private lastToken = 0;

  /** `clock` decides when leases end, as the database's clock does; real time when none is given. */
  constructor(readonly clock: LockClock = systemLockClock) {
    if (typeof clock?.now !== 'function') throw new TypeError('clock must be a LockClock: an object with a now() method.');
  }

  /** @internal The store's time, in milliseconds. */
  now(): number {
    return this.clock.now().getTime();
  }

  /** @internal The row of `name` if its lock is live at `now`: an expired row is absent. */
  live(name: string, now: number): MemoryLockRow | undefined {
    const row = this.rows.get(name);
    return row && isLive(row, now) ? row : undefined;
  }

  /** @internal Every row live at `now`, ordered by name. */
  liveRows(now: number): MemoryLockRow[] {
    return [...this.rows.values()].filter((row) => isLive(row, now)).sort(byName);
  }

  /** @internal Up to `limit` rows that had expired by `now`. */
  expiredRows(now: number, limit: number): MemoryLockRow[] {
    const expired: MemoryLockRow[] = [];
    for (const row of this.rows.values()) {
      if (expired.length >= limit) break;
      if (!isLive(row, now)) expired.push(row);
    }
    return expired;
  }

  /** @internal Writes `row`, over whatever row its name had. */
  put(row: MemoryLockRow): void {
    this.rows.set(row.name, row);
  }

  /** @internal Deletes the row of `name`. */
  delete(name: string): void {
    this.rows.delete(name);
  }

  /** @internal The next fencing token: greater than every token drawn before from this store. */
  drawToken(): number {
    return ++this.lastToken;
  }
}

function isLive(row: MemoryLockRow, now: number): boolean {
  return row.lockedUntil === null || row.lockedUntil > now;
}
