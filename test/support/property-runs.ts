import fc from 'fast-check';

/**
 * How many cases a property suite runs, and from which seed. CI runs the few cases its suite asks for,
 * from a fixed seed, so a red build replays the same way; `npm run soak` sets LOCKMGR_PROPERTY_RUNS to
 * run many more from a random seed. LOCKMGR_PROPERTY_SEED and LOCKMGR_PROPERTY_PATH replay a failure.
 */
export const PROPERTY_RUNS_VARIABLE = 'LOCKMGR_PROPERTY_RUNS';
export const PROPERTY_SEED_VARIABLE = 'LOCKMGR_PROPERTY_SEED';
export const PROPERTY_PATH_VARIABLE = 'LOCKMGR_PROPERTY_PATH';

/** What `npm run soak` gives each database when SOAK_SECONDS is not set. */
const DEFAULT_SOAK_SECONDS = 60;

/** The seed CI runs from; a fixed one, so that every run of CI tries the same cases. */
const CI_SEED = 20261130;

export interface PropertyBudget {
  /** Cases in CI, when LOCKMGR_PROPERTY_RUNS is not set. */
  runs: number;
  /** Time for the cases and the shrinking of a failure together, in CI. */
  seconds: number;
}

/** The jest timeout of a property test: its budget, and time to report its counterexample. */
export function propertyTimeout(budget: PropertyBudget): number {
  return (propertyTimeLimitSeconds(budget) + 30) * 1000;
}

/** A soak's cases on each database stop after the soak's time per database (`SOAK_SECONDS`, as for its load), leaving time to shrink. */
function propertyTimeLimitSeconds({ seconds }: PropertyBudget): number {
  const soakRuns = Number(process.env[PROPERTY_RUNS_VARIABLE]);
  return soakRuns > 0 ? Number(process.env.SOAK_SECONDS) || DEFAULT_SOAK_SECONDS : seconds;
}

/**
 * Checks `property`, and on failure throws an error with fast-check's report (the seed, the shrunk
 * counterexample and the scheduler's interleaving, if any) and the command that replays it.
 */
export async function assertProperty<T>(property: fc.IAsyncProperty<T>, budget: PropertyBudget): Promise<void> {
  const soakRuns = Number(process.env[PROPERTY_RUNS_VARIABLE]);
  const givenSeed = process.env[PROPERTY_SEED_VARIABLE];
  let caseRunning = Promise.resolve();
  let caseDone = () => {};
  const details = await fc.check(property, {
    plugins: [
      // Every case talks to a real database: shrinking a failure is bounded by time, not by the number of tries.
      // The limit stops waiting for a case at once; the hooks after it are wrapped by it, so they tell when
      // the case itself has ended, cut short or not.
      fc.interruptAfterTimeLimit(propertyTimeLimitSeconds(budget) * 1000),
      fc.beforeEach(() => void (caseRunning = new Promise<void>((resolve) => (caseDone = resolve)))),
      fc.afterEach(() => caseDone()),
    ],
    numRuns: soakRuns > 0 ? soakRuns : budget.runs,
    seed: givenSeed ? Number(givenSeed) : soakRuns > 0 ? Math.floor(Math.random() * 2 ** 31) : CI_SEED,
    path: process.env[PROPERTY_PATH_VARIABLE] || undefined,
    verbose: fc.VerbosityLevel.Verbose,
  });
  // A case the time limit cut short goes on by itself: it must close what it opened before the suite ends.
  await caseRunning;
  if (!details.failed) return;
  const replay =
    `Replay it with: ${PROPERTY_SEED_VARIABLE}=${details.seed} ${PROPERTY_PATH_VARIABLE}=${details.counterexamplePath ?? ''} ` +
    `npx jest ${expect.getState().testPath ?? ''} -t '${expect.getState().currentTestName ?? ''}'`;
  const error = details.errorInstance;
  const reason = error instanceof Error ? (error.stack ?? error.message) : String(error);
  throw new Error(`${(await fc.asyncDefaultReportMessage(details)) ?? 'The property failed.'}\n\nThe shrunk case failed with: ${reason}\n\n${replay}`);
}
