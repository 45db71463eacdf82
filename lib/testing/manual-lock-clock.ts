import type { LockClock } from './lock-clock';

/**
 * A clock that moves only when told to: a test makes leases run out with `advance`, at once and to the
 * millisecond, instead of waiting for them.
 *
 * ```ts
 * const clock = new ManualLockClock();
 * clock.advance(601); // every lease of 600 seconds or less has now expired
 * ```
 */
export class ManualLockClock implements LockClock {
  /** Milliseconds since the epoch, fractions kept so that many small advances add up. */
  private milliseconds: number;
  private readonly listeners = new Set<() => void>();

  /** Starts at `start`, by default the current time. */
  constructor(start: Date = new Date()) {
    if (!(start instanceof Date) || Number.isNaN(start.getTime())) {
      throw new RangeError(`start must be a valid Date, got ${start instanceof Date ? 'an invalid Date' : typeof start}.`);
    }
    this.milliseconds = start.getTime();
  }

  /** The clock's time, as a new Date each call (changing it does not move the clock). */
  now(): Date {
    return new Date(this.milliseconds);
  }

  /** Moves the clock forward by `seconds` (fractions allowed) and wakes acquirers waiting for a lease to end. */
  advance(seconds: number): void {
    if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0) {
      throw new RangeError(`seconds must be a finite number, zero or more, got ${typeof seconds === 'number' ? seconds : typeof seconds}.`);
    }
    this.milliseconds += seconds * 1000;
    for (const listener of [...this.listeners]) listener();
  }

  onAdvance(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
