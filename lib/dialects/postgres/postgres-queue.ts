import { randomUUID } from 'node:crypto';
import type { ReleaseWaiting } from '../lock-dialect';
import type { PostgresListener } from './postgres-listener';
import { untilLeaseEnds } from '../watched-waiting';
import type { ReleaseSubscription } from '../release-waiters';
import { PlaceRequest, QueuePlace } from './postgres-queue-place';

/** How often a process renews the places of its waiters (and looks for any of them that is first in line for a free name). */
export const PLACE_RENEWAL_MS = 500;

/** What the renewal of a process's places found of each: `due` when it is first in line for a free name, `granted` when it was handed the lock. */
export interface RenewedPlace {
  waiter: string;
  due: boolean;
  granted: boolean;
}

/** What the database did with a place when its waiter left it. */
export interface LeftPlace {
  /** It had been handed the lock, which its waiter must release. */
  granted: boolean;
  /** The waiter told that its turn has come, the name being free; null: none. */
  next: string | null;
}

/** What the statement that takes or renews a place (`enqueue`) answers. */
export interface TakenPlace {
  /** Whether the name is held, as of the place: with the seconds left of its lease (null: it never expires). */
  held: boolean;
  seconds_left: number | null;
  /** The place was handed the lock already. */
  granted: boolean;
  /** Live places come before it. */
  queued: boolean;
}

/**
 * How long a waiter whose place was just taken sleeps at most: a free name's first in line tries at once,
 * and the others are told when their turn comes; a held one wakes when its lease ends too, since an
 * expiry announces nothing.
 */
export function sleepLimit(place: Pick<TakenPlace, 'held' | 'seconds_left' | 'queued'>): number {
  if (!place.held) return place.queued ? Infinity : 0;
  return untilLeaseEnds(place.seconds_left);
}

/** The callbacks by which the queue reaches the database. */
export interface QueueStatements {
  /** Takes or renews a place, whose app listens through `listener` (none: it cannot). */
  take(place: QueuePlace, listener: PostgresListener | undefined): Promise<TakenPlace>;
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

  /**
   * A place for a waiting acquirer, and its wait, which keeps `listener` open (none: the app cannot
   * listen). Each sleep of the wait takes or renews the place first, unless the statement that failed to
   * take the lock just took it (see `QueuePlace.taken`).
   */
  join(subscription: ReleaseSubscription, request: PlaceRequest, listener: PostgresListener | undefined): { place: QueuePlace; waiting: ReleaseWaiting } {
    const stopUsing = listener?.use();
    const place = new QueuePlace(randomUUID(), randomUUID(), request, subscription, (leave) => this.remove(place, leave));
    this.places.set(place.waiter, place);
    this.timer ??= setInterval(() => void this.renew(), PLACE_RENEWAL_MS).unref();
    // Listen first, then take the place and flag the row, so the holder's release cannot slip between them unannounced.
    // Without notices (they do not arrive, or the listener cannot connect yet) the place still counts, found by renewals.
    const announce = async () => {
      const answered = place.answered();
      if (answered !== undefined) return answered;
      await listener?.listening().catch(() => undefined);
      // A wake-up may have ended the sleep while the listener connected, and the wait with it.
      if (place.over) return 0;
      const sentAt = performance.now();
      const taken = await this.statements.take(place, listener);
      if (taken.granted) {
        await this.fetchHandedOver(place);
        return Infinity;
      }
      place.taken(sentAt);
      return sleepLimit(taken);
    };
    return { place, waiting: place.waiting(announce, stopUsing) };
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
  served(waiter: string): void {
    this.places.get(waiter)?.served();
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
