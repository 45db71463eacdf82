import { randomUUID } from 'node:crypto';
import type { ReleaseSubscription } from '../release-waiters';

/** How often a process renews the places of its waiters (and looks for any of them that is first in line for a free name). */
export const PLACE_RENEWAL_MS = 500;
/**
 * A place not renewed for this long is passed over: a waiter whose process died holds up the queue
 * for at most this, plus one renewal period of the waiter behind it.
 */
export const PLACE_LAPSE_SECONDS = 2;

/** What the renewal of a process's places found of each: `due` when it is first in line for a free name. */
export interface RenewedPlace {
  waiter: string;
  due: boolean;
}

/**
 * The places this process's waiters hold in the queue of waiters (PostgreSQL), by the id each waiter
 * names its place with: it wakes the waiter a release addresses, and renews every place on one timer,
 * which also wakes a waiter that became first in line for a free name without being told (the notice
 * lost, or its predecessor gone).
 */
export class PostgresQueue {
  private readonly places = new Map<string, QueuePlace>();
  private timer?: NodeJS.Timeout;

  constructor(
    /** Renews the places of these waiters; resolves what each is now, without the lost ones. */
    private readonly renewPlaces: (waiters: string[]) => Promise<RenewedPlace[]>,
    /** Deletes a waiter's place and tells the next waiter if the name is free; resolves that waiter, if any. */
    private readonly leavePlace: (waiter: string) => Promise<string | null>,
  ) {}

  /** A place for a waiting acquirer, which its first announcement takes in the database. */
  join(subscription: ReleaseSubscription): QueuePlace {
    const place = new QueuePlace(randomUUID(), subscription, (leave) => this.remove(place, leave));
    this.places.set(place.waiter, place);
    this.timer ??= setInterval(() => void this.renew(), PLACE_RENEWAL_MS).unref();
    return place;
  }

  /** Wakes the waiter of this process that holds the place `waiter`, if any: a release or a departure addressed it. */
  wake(waiter: string | null): void {
    if (waiter !== null) this.places.get(waiter)?.subscription.wake();
  }

  /** The waiter took the lock, which deleted its place. */
  served(waiter: string | undefined): void {
    if (waiter !== undefined) this.places.get(waiter)?.served();
  }

  private remove(place: QueuePlace, leave: boolean): void {
    if (this.places.delete(place.waiter) && this.places.size === 0) this.timer = clearInterval(this.timer) as undefined;
    // A place left behind lapses anyway: a failure here only delays the waiters behind it by the lapse.
    if (leave) this.leavePlace(place.waiter).then((next) => this.wake(next), () => undefined);
  }

  private async renew(): Promise<void> {
    const waiters = [...this.places.keys()];
    if (waiters.length === 0) return;
    // Unrenewed, places lapse and their waiters fall back on polling: nothing more to do on a failure.
    const renewed = await this.renewPlaces(waiters).catch(() => undefined);
    if (!renewed) return;
    const found = new Set<string>();
    for (const { waiter, due } of renewed) {
      found.add(waiter);
      if (due) this.wake(waiter);
    }
    for (const waiter of waiters) if (!found.has(waiter)) this.places.get(waiter)?.missing();
  }
}

/** One waiting acquirer's place in the queue, named by a random id of its own. */
export class QueuePlace {
  /** Whether an announcement of the place reached the database. */
  private placed = false;
  /** The wait ended: with the lock (the acquisition deleted the place), or without it (the waiter left). */
  private ended?: 'served' | 'left';

  constructor(
    readonly waiter: string,
    readonly subscription: ReleaseSubscription,
    private readonly remove: (leave: boolean) => void,
  ) {}

  /** Whether the wait is over: an announcement from now on would take a place nobody holds. */
  get over(): boolean {
    return this.ended !== undefined;
  }

  /**
   * The database took (or renewed) the place. An announcement that answers after the wait ended (it was
   * sent before, or waited for the listener meanwhile) took a place nobody holds: it is deleted again.
   */
  taken(): void {
    this.placed = true;
    if (this.ended) this.remove(true);
  }

  /** A renewal did not find the place: it lapsed and was cleaned up, or a failover lost it. The next announcement takes it again. */
  missing(): void {
    if (this.placed) this.subscription.wake();
  }

  /** The waiter took the lock, which deleted its place. */
  served(): void {
    this.ended = 'served';
    this.remove(false);
  }

  /** The wait is over; a waiter that did not take the lock leaves its place. */
  close(): void {
    if (this.ended) return;
    this.ended = 'left';
    this.remove(true);
  }
}
