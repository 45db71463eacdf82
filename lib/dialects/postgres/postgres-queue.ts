import type { ReleaseSubscription } from '../release-waiters';

/** How often a process renews the places of its waiters (and looks for any of them that is first in line for a free name). */
export const PLACE_RENEWAL_MS = 500;
/**
 * A place not renewed for this long is passed over: a waiter whose process died holds up the queue
 * for at most this, plus one renewal period of the waiter behind it.
 */
export const PLACE_LAPSE_SECONDS = 2;
/** A waiter that found no holder to flag, with places before its own, looks again this soon, then less often. */
const FIRST_LOOK_MS = 2;

/** What the renewal of a process's places found of each: `due` when it is first in line for a free name. */
export interface RenewedPlace {
  ticket: string | number;
  due: boolean;
}

/**
 * The places this process's waiters hold in the queue of waiters (PostgreSQL), by ticket: it wakes the
 * waiter a release addresses, and renews every place on one timer, which also wakes a waiter that
 * became first in line for a free name without being told (the notice lost, or its predecessor gone).
 */
export class PostgresQueue {
  private readonly places = new Map<number, QueuePlace>();
  private timer?: NodeJS.Timeout;

  constructor(
    /** Renews the places of these tickets; resolves what each is now, without the lost ones. */
    private readonly renewPlaces: (tickets: number[]) => Promise<RenewedPlace[]>,
    /** Deletes a place and tells the next waiter if the name is free; resolves that waiter's ticket, if any. */
    private readonly leavePlace: (ticket: number) => Promise<number | null>,
  ) {}

  /** The place of a waiting acquirer, taken by its first announcement. */
  join(subscription: ReleaseSubscription): QueuePlace {
    return new QueuePlace(this, subscription);
  }

  /** Wakes the waiter of this process that holds `ticket`, if any: a release or a departure addressed it. */
  wake(ticket: number | null): void {
    if (ticket !== null) this.places.get(ticket)?.subscription.wake();
  }

  /** The waiter that holds `ticket` took the lock, which deleted its place. */
  served(ticket: number | undefined): void {
    if (ticket !== undefined) this.places.get(ticket)?.served();
  }

  /** @internal */ hold(place: QueuePlace, ticket: number): void {
    if (place.ticket !== undefined) this.places.delete(place.ticket);
    this.places.set(ticket, place);
    this.timer ??= setInterval(() => void this.renew(), PLACE_RENEWAL_MS).unref();
  }

  /** @internal */ release(place: QueuePlace, leave: boolean): void {
    const ticket = place.ticket;
    if (ticket === undefined) return;
    this.places.delete(ticket);
    if (this.places.size === 0) this.timer = clearInterval(this.timer) as undefined;
    // A place left behind lapses anyway: a failure here only delays the waiters behind it by the lapse.
    if (leave) this.leavePlace(ticket).then((next) => this.wake(next), () => undefined);
  }

  private async renew(): Promise<void> {
    const tickets = [...this.places.keys()];
    if (tickets.length === 0) return;
    // Unrenewed, places lapse and their waiters fall back on polling: nothing more to do on a failure.
    const renewed = await this.renewPlaces(tickets).catch(() => undefined);
    if (!renewed) return;
    const found = new Set<number>();
    for (const { ticket, due } of renewed) {
      found.add(Number(ticket));
      if (due) this.wake(Number(ticket));
    }
    for (const ticket of tickets) if (!found.has(ticket)) this.places.get(ticket)?.lost();
  }
}

/** One waiting acquirer's place in the queue, once its first announcement has taken it. */
export class QueuePlace {
  ticket?: number;
  private lookMs = FIRST_LOOK_MS;
  /** The waiter gave up: a place the database gives it from now on (an announcement still in flight) is left at once. */
  private left = false;

  constructor(
    private readonly queue: PostgresQueue,
    readonly subscription: ReleaseSubscription,
  ) {}

  /** The database gave (or kept) this place. */
  taken(ticket: number): void {
    if (ticket !== this.ticket) this.queue.hold(this, ticket);
    this.ticket = ticket;
    if (this.left) this.leave();
  }

  /** Milliseconds until the waiter looks again, having found no holder to flag while places come before its own. */
  nextLook(): number {
    const ms = this.lookMs;
    this.lookMs = Math.min(this.lookMs * 2, PLACE_RENEWAL_MS);
    return ms;
  }

  /** The waiter flagged the holder's row: the holder's release will tell it when it is first in line. */
  flagged(): void {
    this.lookMs = FIRST_LOOK_MS;
  }

  /** The place is gone from the database (it lapsed, or a failover lost it): the next announcement takes a new one. */
  lost(): void {
    this.queue.release(this, false);
    this.ticket = undefined;
    this.subscription.wake();
  }

  /** The waiter took the lock, which deleted its place. */
  served(): void {
    this.queue.release(this, false);
    this.ticket = undefined;
  }

  /** The waiter gives up: its place is deleted. */
  leave(): void {
    this.left = true;
    this.queue.release(this, true);
    this.ticket = undefined;
  }
}
