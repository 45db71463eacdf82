import { setImmediate as nextTurn } from 'node:timers/promises';
import type { LockRecord } from '../lock.entity';
import type {
  AcquireRequest,
  AcquireResult,
  LockDialect,
  ReleaseRequest,
  ReleaseWaiting,
  RenewRequest,
  SetLocksRequest,
  SetLocksResult,
  SetLockStep,
} from '../dialects/lock-dialect';
import { planSetLock } from '../dialects/set-lock-plan';
import type { MemoryLockRow, MemoryLockStore } from './memory-lock-store';

/** A new record of `row` (never the row itself, so a caller changing it cannot change the store), as read at `now`. */
function recordOf(row: MemoryLockRow, now: number): LockRecord {
  return {
    name: row.name,
    owner: row.owner,
    fencingToken: row.fencingToken,
    lockedBy: row.lockedBy,
    lockProcess: row.lockProcess,
    lockedUntil: row.lockedUntil === null ? null : new Date(row.lockedUntil),
    createdAt: new Date(row.createdAt),
    updatedAt: new Date(row.updatedAt),
    secondsLeft: row.lockedUntil === null ? null : (row.lockedUntil - now) / 1000,
  };
}

/** Seconds of a lease in milliseconds, rounded as SQLite rounds the times it keeps. */
const milliseconds = (seconds: number) => Math.round(seconds * 1000);

/** `seconds` after `now`; null when the lock is never to expire. */
function after(now: number, seconds: number | null): number | null {
  return seconds === null ? null : now + milliseconds(seconds);
}

/**
 * One app instance's access to a `MemoryLockStore`, keeping the promises the databases keep within one
 * process: owner compare-and-set, fencing tokens that grow for the life of the store, and expiry by the
 * store's clock. Each call does its work in a later turn of the event loop, as a database call would, and
 * returns copies. Every release happens in this process, so every waiter hears of it; a waiter also
 * looks again whenever the store's clock jumps forward.
 */
export class MemoryDialect implements LockDialect {
  /** As the `varchar(255)` of the databases' tables, counted in characters. */
  readonly maxNameLength = 255;
  readonly announcesReleases = true;
  private closed = false;

  constructor(private readonly store: MemoryLockStore) {}

  /** The store's clock: leases, handles, `minHold` and the ticks of `@Cron` methods move as the test moves it. */
  clock(): number {
    return this.store.now();
  }

  private checkOpen(method: string): void {
    if (this.closed) throw new Error(`This connection to the in-memory lock store is closed: ${method} cannot run after close().`);
  }

  /**
   * Runs `work` at the store's current time in a later turn of the event loop, so that nothing changes
   * while the caller's code runs, as with a database. Calls run in the order they were made.
   */
  private async run<T>(method: string, work: (now: number) => T): Promise<T> {
    this.checkOpen(method);
    await nextTurn();
    return work(this.store.now());
  }

  async ensureTable(): Promise<void> {
    await this.run('ensureTable', () => undefined);
  }

  async inspectTable(): Promise<void> {
    await this.run('inspectTable', () => undefined);
  }

  acquire(request: AcquireRequest): Promise<AcquireResult> {
    return this.run('acquire', (now): AcquireResult => {
      const holder = this.store.live(request.name, now);
      if (holder) {
        const { lockedBy, lockedUntil, secondsLeft } = recordOf(holder, now);
        return { acquired: false, holder: { lockedBy, lockedUntil, secondsLeft } };
      }
      return { acquired: true, lock: this.insert(request, now) };
    });
  }

  /** Writes a new lock over a free or expired name; its token is drawn only now that the name was found free. */
  private insert(request: AcquireRequest, now: number): LockRecord {
    const row: MemoryLockRow = {
      name: request.name,
      owner: request.owner,
      fencingToken: this.store.drawToken(),
      lockedBy: request.lockedBy,
      lockProcess: request.lockProcess,
      lockedUntil: after(now, request.expires),
      createdAt: now,
      updatedAt: now,
    };
    this.store.put(row);
    return recordOf(row, now);
  }

  release(request: ReleaseRequest): Promise<boolean> {
    return this.run('release', (now) => {
      const row = this.store.live(request.name, now);
      if (!row || (request.owner !== null && row.owner !== request.owner)) return false;
      this.store.delete(request.name);
      this.store.waiters.wake(request.name);
      return true;
    });
  }

  renew(request: RenewRequest): Promise<LockRecord | null> {
    return this.run('renew', (now) => this.renewAt(request, now));
  }

  private renewAt({ name, owner, expires, mode }: RenewRequest, now: number): LockRecord | null {
    const row = this.store.live(name, now);
    if (!row || (owner !== null && row.owner !== owner)) return null;
    let lockedUntil: number | null;
    if (mode === 'set') lockedUntil = after(now, expires);
    else if (row.lockedUntil === null || expires === null) lockedUntil = null;
    else if (mode === 'add') lockedUntil = row.lockedUntil + milliseconds(expires);
    else lockedUntil = Math.max(row.lockedUntil, after(now, expires)!);
    const renewed = { ...row, lockedUntil, updatedAt: now };
    this.store.put(renewed);
    return recordOf(renewed, now);
  }

  find(name: string): Promise<LockRecord | null> {
    return this.run('find', (now) => {
      const row = this.store.live(name, now);
      return row ? recordOf(row, now) : null;
    });
  }

  list(): Promise<LockRecord[]> {
    return this.run('list', (now) => this.store.liveRows(now).map((row) => recordOf(row, now)));
  }

  deleteExpired(limit: number): Promise<number> {
    return this.run('deleteExpired', (now) => {
      const expired = this.store.expiredRows(now, limit);
      for (const row of expired) this.store.delete(row.name);
      return expired.length;
    });
  }

  setLocks(request: SetLocksRequest): Promise<SetLocksResult> {
    return this.run('setLocks', (now): SetLocksResult => {
      // Every name is planned before anything is written, so a conflict leaves the store as it was.
      const planned: Omit<SetLockStep, 'lock'>[] = [];
      for (const lock of request.locks) {
        const row = this.store.live(lock.name, now);
        const existing = row ? recordOf(row, now) : null;
        const action = planSetLock(existing, request);
        if (action === 'fail') return { conflict: existing! };
        planned.push({ name: lock.name, existing, action });
      }
      const steps = planned.map((step, index): SetLockStep => {
        const { name, expires } = request.locks[index];
        let lock = step.existing;
        if (step.action === 'create') lock = this.insert(request.locks[index], now);
        if (step.action === 'extend') lock = this.renewAt({ name, owner: null, expires, mode: 'extend' }, now);
        return { ...step, lock };
      });
      return { steps };
    });
  }

  subscribe({ name }: AcquireRequest): ReleaseWaiting {
    this.checkOpen('subscribe');
    const subscription = this.store.waiters.subscribe(name);
    // A jump of the clock may have ended the lease a waiter sleeps on: it looks again at once.
    const stopWatchingClock = this.store.clock.onAdvance?.(() => subscription.wake());
    return {
      sleep: (timeoutMs, signal) => subscription.sleep(timeoutMs, signal),
      close: () => {
        stopWatchingClock?.();
        subscription.close();
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}
