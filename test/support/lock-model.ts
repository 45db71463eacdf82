import type { LockEntity } from '../../lib';

/** When a lease ends, as a window of `performance.now()` times: the database decided it at some instant of its call. */
export interface ExpiryWindow {
  earliest: number;
  latest: number;
}

/** The model's lock of one name. */
export interface ModelLock {
  owner: string;
  fencingToken: number;
  lockedBy: string | null;
  /** null: it never expires (or a manager renews it for as long as it holds it). */
  expiry: ExpiryWindow | null;
}

/** The owner token of a handle a call was told it holds: such a handle must carry one. */
export function ownerToken(lock: Pick<LockEntity, 'name' | 'owner'>): string {
  if (lock.owner === null) throw new Error(`The handle of "${lock.name}" that its taker got has no owner token`);
  return lock.owner;
}

/** The time span of one call: the database acted at some instant in it. */
export interface CallSpan {
  from: number;
  to: number;
}

/** Whether a name is held: known for sure, or not, when its lease ends too close to the call to tell. */
export type Holding = 'held' | 'free' | 'unknown';

/** The lease a call that asked for `expires` seconds gets, as a window. */
export function leaseOf(expires: number | null, span: CallSpan): ExpiryWindow | null {
  if (expires === null || expires === 0) return null;
  return { earliest: span.from + expires * 1000, latest: span.to + expires * 1000 };
}

/**
 * An in-memory model of the lock table, for a test that drives real lock services: which name is held
 * by which owner until when, and the highest fencing token granted. Every check throws an error saying
 * what the table did that the model does not allow; expiries within `marginMs` of a call are uncertain.
 */
export class LockModel {
  private readonly locks = new Map<string, ModelLock>();
  /** The fencing token each owner was granted: a row's token must be the one its owner got. */
  private readonly tokens = new Map<string, number>();
  private highestToken = 0;

  constructor(private readonly marginMs: number) {}

  /** The model's lock of `name`, whether or not its lease has ended. */
  lock(name: string): ModelLock | undefined {
    return this.locks.get(name);
  }

  /** Whether a grant with this owner token was recorded. */
  knowsOwner(owner: string): boolean {
    return this.tokens.has(owner);
  }

  names(): string[] {
    return [...this.locks.keys()];
  }

  /** Whether `name` was held when the database acted, in a call over `span`. */
  holding(name: string, span: CallSpan): Holding {
    const lock = this.locks.get(name);
    if (!lock) return 'free';
    if (!lock.expiry) return 'held';
    if (span.to + this.marginMs < lock.expiry.earliest) return 'held';
    if (span.from - this.marginMs > lock.expiry.latest) return 'free';
    return 'unknown';
  }

  /** Checks that a call over `span` could see `name` as held (or not), and learns from it when the lease was uncertain. */
  observe(name: string, held: boolean, span: CallSpan, what: string): void {
    const holding = this.holding(name, span);
    if (holding !== 'unknown' && held !== (holding === 'held')) {
      throw new Error(`${what}: "${name}" is ${held ? 'held' : 'free'}, but the model says it is ${holding} (${this.describe(name)})`);
    }
    if (!held) this.locks.delete(name);
  }

  /** Checks a lock that a call over `span` says it granted, and records it with the lease it asked for. */
  grant(name: string, lock: LockEntity, expires: number | null, span: CallSpan, what: string): void {
    if (this.holding(name, span) === 'held') throw new Error(`${what} took "${name}", which was still held: ${this.describe(name)}`);
    if (!(lock.fencingToken > this.highestToken)) {
      throw new Error(`${what} took "${name}" with fencing token ${lock.fencingToken}, not above the highest granted before, ${this.highestToken}`);
    }
    const owner = ownerToken(lock);
    if (this.tokens.has(owner)) throw new Error(`${what} took "${name}" with the owner token of an earlier grant`);
    this.highestToken = lock.fencingToken;
    this.tokens.set(owner, lock.fencingToken);
    this.locks.set(name, { owner, fencingToken: lock.fencingToken, lockedBy: lock.lockedBy, expiry: leaseOf(expires, span) });
  }

  /**
   * Checks that `lock` is the model's lock of its name, with the same token, and the same owner unless it
   * is a description (no owner token): each grant has a token of its own, so the token tells the grant.
   */
  expectHolder(lock: Pick<LockEntity, 'name' | 'owner' | 'fencingToken'>, what: string): ModelLock {
    const modelled = this.locks.get(lock.name);
    if (!modelled || (lock.owner !== null && modelled.owner !== lock.owner) || modelled.fencingToken !== lock.fencingToken) {
      throw new Error(`${what}: "${lock.name}" is held with token ${lock.fencingToken}, but the model has ${this.describe(lock.name)}`);
    }
    return modelled;
  }

  /** Moves the end of the lease of `name` as a renewal does: `extend` never shortens it, `add` adds to it. */
  renew(name: string, expires: number | null, mode: 'extend' | 'add', span: CallSpan): void {
    const lock = this.locks.get(name)!;
    if (expires === null || expires === 0) lock.expiry = null;
    else if (!lock.expiry) return;
    else if (mode === 'add') lock.expiry = { earliest: lock.expiry.earliest + expires * 1000, latest: lock.expiry.latest + expires * 1000 };
    else {
      const lease = leaseOf(expires, span)!;
      lock.expiry = { earliest: Math.max(lock.expiry.earliest, lease.earliest), latest: Math.max(lock.expiry.latest, lease.latest) };
    }
  }

  /** A manager renews the lock for as long as it holds it; when it stops, the lease it last got runs out. */
  renewForever(name: string, renewing: boolean, expires: number, span: CallSpan): void {
    const lock = this.locks.get(name);
    if (lock) lock.expiry = renewing ? null : { earliest: span.from, latest: span.to + expires * 1000 };
  }

  release(name: string): void {
    this.locks.delete(name);
  }

  /** Checks the live locks a call over `span` listed: every certain lock, and nothing the model does not have. */
  checkList(listed: Pick<LockEntity, 'name' | 'owner' | 'fencingToken'>[], span: CallSpan, what: string): void {
    const names = new Set(listed.map((lock) => lock.name));
    if (names.size !== listed.length) throw new Error(`${what} listed a name twice: ${listed.map((lock) => lock.name).join(', ')}`);
    for (const lock of listed) this.expectHolder(lock, what);
    for (const name of this.names()) this.observe(name, names.has(name), span, what);
  }

  /** Checks raw rows of the table, expired ones included: each carries an owner this model granted, with its token. */
  checkRows(rows: { name: string; owner: string; fencing_token: string | number }[], what: string): void {
    for (const row of rows) {
      const token = this.tokens.get(row.owner);
      if (token !== Number(row.fencing_token)) {
        throw new Error(`${what}: row "${row.name}" has owner ${row.owner} and token ${row.fencing_token}, which no call was told it got`);
      }
    }
  }

  describe(name: string): string {
    const lock = this.locks.get(name);
    if (!lock) return 'free';
    const until = lock.expiry ? `until ${Math.round(lock.expiry.earliest)}..${Math.round(lock.expiry.latest)} ms` : 'with no expiry';
    return `held with token ${lock.fencingToken} by ${lock.lockedBy} ${until}, now is ${Math.round(performance.now())} ms`;
  }
}
