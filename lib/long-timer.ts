/**
 * The longest delay a Node timer keeps: Node runs a timer of more than 2^31 - 1 ms after 1 ms instead
 * (with a warning), which would turn a 30-day lease into a lease lost at once.
 */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** A timer made by {@link setLongTimeout}. */
export interface LongTimer {
  /** Stops the timer; the callback will not run. Safe to call at any time, more than once. */
  clear(): void;
}

/**
 * Runs `callback` once, after `delayMs` milliseconds of any length, in steps a Node timer keeps. The
 * steps are counted on the monotonic clock and do not keep the process alive, like the renewal and
 * expiry timers they serve.
 */
export function setLongTimeout(callback: () => void, delayMs: number): LongTimer {
  const dueAt = performance.now() + Math.max(0, delayMs);
  let timer: NodeJS.Timeout;
  const schedule = (ms: number) => {
    timer = setTimeout(step, Math.min(ms, LONGEST_TIMER_MS));
    timer.unref();
  };
  const step = () => {
    const left = dueAt - performance.now();
    if (left > 0) schedule(left);
    else callback();
  };
  schedule(Math.max(0, delayMs));
  return { clear: () => clearTimeout(timer) };
}
