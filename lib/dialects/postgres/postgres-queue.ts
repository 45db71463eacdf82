import { randomUUID } from 'node:crypto';
import type { AcquireRequest, ReleaseWaiting } from '../lock-dialect';
import type { ListenerSession } from './postgres-listener';
import type { LockRecord } from '../../lock.entity';
import type { ReleaseSubscription } from '../release-waiters';

/** How often a process renews the places of its waiters (and looks for any of them that is first in line for a free name). */
export const PLACE_RENEWAL_MS = 500;
/**
 * A place not renewed for this long is passed over: a waiter whose process died holds up the queue
 * for at most this, plus one renewal period of the waiter behind it.
 */
export const PLACE_LAPSE_SECONDS = 2;

/** What the renewal of a process's places found of each: `due` when it is first in line for a free name, `granted` when it was handed the lock. */
export interface RenewedPlace {
  waiter: string;
  due: boolean;
  granted: boolean;
}

/** What a waiter asks of the lock a release may hand over to its place. */
export type PlaceRequest = Pick<AcquireRequest, 'name' | 'expires' | 'lockedBy' | 'lockProcess'>;

/** What a release that handed a lock over to a place tells of it; the place knows the rest. */
export type HandOver = Pick<LockRecord, 'fencingToken' | 'lockedUntil' | 'createdAt'>;

/** The lock a release handed over to a place, and a reading of `performance.now()` from before the hand-over. */
export interface HandedLock {
  lock: LockRecord;
  requestedAt: number;
}

/** What the database did with a place when its waiter left it. */
export interface LeftPlace {
  /** It had been handed the lock, which its waiter must release. */
  granted: boolean;
  /** The waiter told that its turn has come, the name being free; null: none. */
  next: string | null;
}

/** The callbacks by which the queue reaches the database. */
export interface QueueStatements {
  /** Renews the places of these waiters; resolves what each is now, without the lost ones. */
  renew(waiters: string[]): Promise<RenewedPlace[]>;
  /** Deletes a waiter's place and tells the next waiter if the name is free. */
  leave(waiter: string): Promise<LeftPlace | undefined>;
  /** Reads the row of the lock a release handed over to a place; undefined if it is no longer held. */
  handedOver(place: QueuePlace): Promise<{ fencing_token: string; locked_until: Date | null; created_at: Date } | undefined>;
  /** Releases the lock handed over to a place whose waiter had left. */
  release(place: QueuePlace): Promise<unknown>;
}

/**
 * The places this process's waiters hold in the queue of waiters (PostgreSQL), by the id each waiter
 * names its place with. It delivers what a release addresses to a place: the turn of a waiter, which
 * then tries to take the lock, or the lock itself, handed over. It renews every place on one timer,
 * which also finds a waiter that became first in line for a free name without being told (the notice
 * lost, or its predecessor gone), and a place handed the lock whose notice was lost.
 */
export class PostgresQueue {
  private readonly places = new Map<string, QueuePlace>();
  private timer?: NodeJS.Timeout;
  /** Departures under way: one may have to release a lock handed over to its place. */
  private readonly leaving = new Set<Promise<void>>();

  constructor(private readonly statements: QueueStatements) {}

  /** A place for a waiting acquirer, which its first announcement takes in the database. */
  join(subscription: ReleaseSubscription, request: PlaceRequest): QueuePlace {
    const place = new QueuePlace(randomUUID(), randomUUID(), request, subscription, (leave) => this.remove(place, leave));
    this.places.set(place.waiter, place);
    this.timer ??= setInterval(() => void this.renew(), PLACE_RENEWAL_MS).unref();
    return place;
  }

  /**
   * Delivers what a release or a departure addressed to a place of this process: the place alone (its
   * turn has come), or the place, the fencing token, the expiry and the start of a lock handed over to
   * it, in epoch seconds (an empty expiry: it never expires).
   */
  deliver(notice: string | null): void {
    if (notice === null) return;
    const [waiter, token, until, created] = notice.split(' ');
    const place = this.places.get(waiter);
    if (!place) return;
    if (token === undefined) return place.subscription.wake();
    place.handOver({
      fencingToken: Number(token),
      lockedUntil: until ? new Date(Number(until) * 1000) : null,
      createdAt: new Date(Number(created) * 1000),
    });
  }

  /** The waiter took the lock, which deleted its place. */
  served(waiter: string | undefined): void {
    if (waiter !== undefined) this.places.get(waiter)?.served();
  }

  private remove(place: QueuePlace, leave: boolean): void {
    if (this.places.delete(place.waiter) && this.places.size === 0) this.timer = clearInterval(this.timer) as undefined;
    // A place left behind lapses anyway: a failure here only delays the waiters behind it by the lapse,
    // or, if a release handed it the lock meanwhile, keeps that lock until its lease ends.
    if (!leave) return;
    const leaving = this.leave(place).catch(() => undefined);
    this.leaving.add(leaving);
    void leaving.then(() => this.leaving.delete(leaving));
  }

  /** Resolves once the departures under way have ended: before the store closes, so that none leaves a lock behind. */
  async settle(): Promise<void> {
    while (this.leaving.size > 0) await Promise.all(this.leaving);
  }

  private async leave(place: QueuePlace): Promise<void> {
    const left = await this.statements.leave(place.waiter);
    if (left?.granted) await this.statements.release(place);
    else this.deliver(left?.next ?? null);
  }

  private async renew(): Promise<void> {
    const waiters = [...this.places.keys()];
    if (waiters.length === 0) return;
    const sentAt = performance.now();
    // Unrenewed, places lapse and their waiters fall back on polling: nothing more to do on a failure.
    const renewed = await this.statements.renew(waiters).catch(() => undefined);
    if (!renewed) return;
    const found = new Set<string>();
    for (const { waiter, due, granted } of renewed) {
      found.add(waiter);
      const place = this.places.get(waiter);
      if (granted) void this.fetchHandedOver(place);
      else place?.foundWaiting(sentAt);
      if (due) place?.subscription.wake();
    }
    for (const waiter of waiters) if (!found.has(waiter)) this.places.get(waiter)?.missing();
  }

  /** Reads a lock handed over to a place whose notice did not come (or not yet). */
  async fetchHandedOver(place: QueuePlace | undefined): Promise<void> {
    if (!place || place.over) return;
    const row = await this.statements.handedOver(place).catch(() => undefined);
    if (row) place.handOver({ fencingToken: Number(row.fencing_token), lockedUntil: row.locked_until, createdAt: row.created_at });
  }
}

/** One waiting acquirer's place in the queue, named by a random id of its own. */
export class QueuePlace {
  /** Whether an announcement of the place reached the database. */
  private placed = false;
  /** The wait ended: with the lock (the acquisition deleted the place, or it claimed the lock handed over), or without it (the waiter left). */
  private ended?: 'served' | 'left';
  /** When the latest statement that found the place still waiting was sent: a hand-over came after it. */
  private waitingAt = performance.now();
  private handed?: HandedLock;

  constructor(
    readonly waiter: string,
    /** The owner token of a lock handed over to the place; the waiter's own attempts use others. */
    readonly owner: string,
    readonly request: PlaceRequest,
    readonly subscription: ReleaseSubscription,
    private readonly remove: (leave: boolean) => void,
  ) {}

  /** Whether the wait is over: an announcement from now on would take a place nobody holds. */
  get over(): boolean {
    return this.ended !== undefined;
  }

  /**
   * The database took (or renewed) the place, in a statement sent at `sentAt`. An announcement that
   * answers after the wait ended (it was sent before, or waited for the listener meanwhile) took a place
   * nobody holds: it is deleted again.
   */
  taken(sentAt: number): void {
    this.placed = true;
    this.foundWaiting(sentAt);
    if (this.ended) this.remove(true);
  }

  /** A statement sent at `sentAt` found the place still waiting. */
  foundWaiting(sentAt: number): void {
    this.waitingAt = Math.max(this.waitingAt, sentAt);
  }

  /** A renewal did not find the place: it lapsed and was cleaned up, or a failover lost it. The next announcement takes it again. */
  missing(): void {
    if (this.placed) this.subscription.wake();
  }

  /** A release handed the lock over to the place: the waiter claims it when it wakes. Once the wait is over, leaving releases it. */
  handOver(lock: HandOver): void {
    if (this.ended || this.handed) return;
    const { name, lockedBy, lockProcess, expires } = this.request;
    const record: LockRecord = { ...lock, name, owner: this.owner, lockedBy, lockProcess, updatedAt: lock.createdAt, secondsLeft: expires };
    // Its lease is counted from before the hand-over: never longer than the database counts it.
    this.handed = { lock: record, requestedAt: this.waitingAt };
    this.subscription.wake();
  }

  /**
   * The values of the statement that takes or renews the place (`enqueue`): the app listens on `channel`
   * (null: it cannot) in `session` (none: no release may hand the place a lock, its app could be gone).
   */
  announcement(channel: string | null, session: ListenerSession | undefined): unknown[] {
    const { name, lockedBy, lockProcess, expires } = this.request;
    return [name, this.waiter, PLACE_LAPSE_SECONDS, channel, this.owner, lockedBy, lockProcess, expires, session?.pid ?? null, session?.started ?? null];
  }

  /** The wait of the place's waiter: each sleep `announce`s the place first; closing it leaves the place, and `stopUsing` the listener. */
  waiting(announce: () => Promise<number>, stopUsing?: () => void): ReleaseWaiting {
    return {
      place: this.waiter,
      owner: this.owner,
      sleep: (timeoutMs, signal) => this.subscription.sleep(timeoutMs, signal, announce),
      handedOver: () => this.claim(),
      close: () => {
        this.subscription.close();
        this.close();
        stopUsing?.();
      },
    };
  }

  /** The lock handed over to the place, if any: taking it ends the wait. */
  claim(): HandedLock | undefined {
    if (!this.handed || this.ended) return undefined;
    this.served();
    return this.handed;
  }

  /** The waiter took the lock, which deleted its place. */
  served(): void {
    this.ended = 'served';
    this.remove(false);
  }

  /** The wait is over; a waiter that did not take the lock leaves its place (and releases a lock handed over to it). */
  close(): void {
    if (this.ended) return;
    this.ended = 'left';
    this.remove(true);
  }
}
