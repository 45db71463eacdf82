/**
 * The time the in-memory lock store reads: it plays the part of the database's clock, so leases expire
 * as this clock moves, and by nothing else.
 */
export interface LockClock {
  /** The current time. */
  now(): Date;
  /**
   * Calls `listener` whenever the time jumps forward (a clock that only moves with real time has none).
   * Waiting acquirers then look again at once, instead of sleeping through the end of a lease that the
   * jump passed. Returns the function that stops the calls.
   */
  onAdvance?(listener: () => void): () => void;
}

/** Real time: the clock of the in-memory lock store when none is given. */
export const systemLockClock: LockClock = { now: () => new Date() };
