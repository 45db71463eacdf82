import type { LockRecord } from '../lock.entity';
import type { AcquireRequest, SetLockAction, SetLocksRequest } from './lock-dialect';

/** What to do with one name of `setLock`, given the live lock found on it (shared by every dialect). */
export function planSetLock(existing: LockRecord | null, request: SetLocksRequest): SetLockAction | 'fail' {
  if (existing) {
    if (request.fail) return 'fail';
    return request.renew ? 'extend' : 'skip';
  }
  return request.create ? 'create' : 'skip';
}

/**
 * The locks of a `setLocks` request in one fixed order, the order its row locks are taken in: two
 * concurrent setLock calls then never wait on each other in a cycle.
 */
export function inLockingOrder(locks: AcquireRequest[]): AcquireRequest[] {
  return [...locks].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
