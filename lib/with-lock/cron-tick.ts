import { LockedError } from '../errors';
import type { LockManager } from '../lock-manager';
import type { LockedRun, LockManagers } from '../lock-managers';
import { checkLockName } from '../validation';
import type { CronSchedule, CronTick } from './cron-schedule';

/** A tick's record lasts this many of its periods: see `runCronTick`. */
const TICK_RECORD_PERIODS = 3;
/** What a tick's record adds to the lock name: `@` and the fire time, `@2026-11-30T05:30:00Z`. */
const TICK_SUFFIX_LENGTH = '@2026-11-30T05:30:00Z'.length;

/**
 * The name of the record of one tick of a lock: the lock name, `@`, and the tick's fire time in UTC to
 * the second (cron fire times are whole seconds), as `listLocks` and the command line show it.
 */
function tickRecordName(lockName: string, tick: CronTick): string {
  return `${lockName}@${new Date(tick.at).toISOString().replace('.000Z', 'Z')}`;
}

/**
 * Runs a call of a `@Cron` method at most once per scheduled fire time across the cluster, and never
 * while a run holds its lock. Two locks do it, each taken in one round trip:
 *
 * 1. **The tick's record**, `<name>@<fire time>`, taken for three periods of the schedule. Whoever takes
 *    it owns that tick; a call for the same tick, from any instance, finds it taken and skips in one round
 *    trip. The fire time is read from the caller's clock when the call comes (`CronSchedule.tickAt`), so a
 *    timer that fires late, or runs on a clock that is behind, still names the tick it was due for, and
 *    the database, which admits one holder per name, decides. The record lasts three periods so that it
 *    outlives every late call for its tick when the instance that took it ran up to a period ahead and the
 *    late one comes up to two periods after the fire time (a period late, on a clock a period behind).
 * 2. **The lock itself**, `<name>`, as for any `@WithLock` call: it keeps runs from overlapping. When
 *    it is held (the previous run is still going), the call lets go of the tick's record and skips, so
 *    the tick stays free for an instance that comes once that run is over.
 *
 * A run that fails keeps its tick: the tick ran, and is not repeated elsewhere. A call that could not
 * start the run (the database failed) lets go of the tick before it rethrows.
 */
export async function runCronTick<T>(
  managers: LockManagers,
  schedule: CronSchedule,
  lockName: string,
  options: object,
  work: (manager: LockManager) => T | Promise<T>,
  caller: string,
): Promise<LockedRun<T>> {
  const { operations } = managers;
  checkLockName(lockName, `${caller} name (a @Cron method's, which keeps ${TICK_SUFFIX_LENGTH} characters for its ticks)`, operations.dialect.maxNameLength - TICK_SUFFIX_LENGTH);
  const tick = schedule.tickAt(operations.dialect.clock?.() ?? Date.now());
  const recordName = tickRecordName(lockName, tick);
  const lease = ((tick.next - tick.at) * TICK_RECORD_PERIODS) / 1000;
  const record = await operations.acquire(operations.requests.acquisition(recordName, { expires: lease }, caller));
  if (record instanceof LockedError) {
    const holder = { lockedBy: record.lockedBy ?? null, lockedUntil: record.lockedUntil ?? null };
    const by = holder.lockedBy ? ` by ${holder.lockedBy}` : '';
    return { locked: new LockedError(lockName, holder, `Tick ${recordName.slice(lockName.length + 1)} of lock "${lockName}" was already taken${by}.`) };
  }
  const letGo = () => operations.release(record, record).catch(() => operations.abandon(record));
  let started = false;
  const startWork = (manager: LockManager) => {
    started = true;
    return work(manager);
  };
  let run: LockedRun<T>;
  try {
    run = await managers.run(lockName, options, startWork, caller);
  } catch (error) {
    if (!started) await letGo();
    throw error;
  }
  if ('locked' in run) await letGo();
  return run;
}
