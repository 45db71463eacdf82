import type { SetLockStep } from './dialects/lock-dialect';
import type { LockEntity, LockRecord } from './lock.entity';

/** What `setLock` did to one name (django-lockmgr's `LockSetStatus`). */
export interface LockSetStatus {
  /** Whether the name was locked before the call. */
  wasLocked: boolean;
  /** `create`: a new lock; `extend`: an existing lock was renewed; `skip`: left as it was. */
  status: 'skip' | 'create' | 'extend';
  /** Whether the name is locked after the call. */
  locked: boolean;
}

/** The outcome of `setLock` (django-lockmgr's `LockSetResult`). */
export interface LockSetResult {
  /** Every lock held on the given names after the call, in the order the names were given. */
  locks: LockEntity[];
  counts: { created: number; renewed: number; skipCreate: number; skipRenew: number };
  statuses: Array<[name: string, status: LockSetStatus]>;
}

/** `handle` makes the handle of a lock after the call; `created`: this call took it. */
export function toLockSetResult(steps: SetLockStep[], handle: (record: LockRecord, created: boolean) => LockEntity): LockSetResult {
  const result: LockSetResult = { locks: [], counts: { created: 0, renewed: 0, skipCreate: 0, skipRenew: 0 }, statuses: [] };
  for (const step of steps) {
    const wasLocked = step.existing !== null;
    if (step.action === 'create') result.counts.created++;
    else if (step.action === 'extend') result.counts.renewed++;
    else if (wasLocked) result.counts.skipRenew++;
    else result.counts.skipCreate++;
    if (step.lock) result.locks.push(handle(step.lock, step.action === 'create'));
    result.statuses.push([step.name, { wasLocked, status: step.action, locked: step.lock !== null }]);
  }
  return result;
}
