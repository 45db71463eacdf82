import type { AcquireRequest, ReleaseWaiting } from '../lock-dialect';
import type { ListenerSession } from './postgres-listener';
import type { LockRecord } from '../../lock.entity';
import type { ReleaseSubscription } from '../release-waiters';

/**
 * A place not renewed for this long is passed over: a waiter whose process died holds up the queue
 * for at most this, plus one renewal period of the waiter behind it.
 */
export const PLACE_LAPSE_SECONDS = 2;

/** What a waiter asks of the lock a release may hand over to its place. */
export type PlaceRequest = Pick<AcquireRequest, 'name' | 'expires' | 'lockedBy' | 'lockProcess'>;

/** What a release that handed a lock over to a place tells of it; the place knows the rest. */
export type HandOver = Pick<LockRecord, 'fencingToken' | 'lockedUntil' | 'createdAt'>;

/** The lock a release handed over to a place, and a reading of `performance.now()` from before the hand-over. */
export interface HandedLock {
  lock: LockRecord;
  requestedAt: number;
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
  private nextSleepMs?: number;

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
   * nobody holds: it is deleted again. A failed acquisition that took the place gives the limit of the
   * wait's first sleep (`nextSleepMs`), which then takes it no second time.
   */
  taken(sentAt: number, nextSleepMs?: number): void {
    this.placed = true;
    this.nextSleepMs = nextSleepMs;
    this.foundWaiting(sentAt);
    if (this.ended) this.remove(true);
  }

  /** The limit of the next sleep, when the place was just taken; once. */
  answered(): number | undefined {
    const limitMs = this.nextSleepMs;
    this.nextSleepMs = undefined;
    return limitMs;
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
