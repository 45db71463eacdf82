const DEADLOCK_ATTEMPTS = 5;

/**
 * Runs a write again when the database chose it as a deadlock's victim, which `isDeadlock` recognises
 * by its error. The database rolled the victim's transaction back whole, so running it again is safe.
 * Returns the function that retries, for a dialect to wrap its writes in.
 */
export function deadlockRetry(isDeadlock: (error: unknown) => boolean): <T>(work: () => Promise<T>) => Promise<T> {
  return async (work) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (!isDeadlock(error) || attempt === DEADLOCK_ATTEMPTS) throw error;
        // A pause of a few milliseconds, random, so the transactions that collided do not collide again.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
      }
    }
  };
}
