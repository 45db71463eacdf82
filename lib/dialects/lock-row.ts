import type { LockRecord } from '../lock.entity';
import type { HolderInfo } from './lock-dialect';

/** A row of the lock table as the PostgreSQL and MySQL drivers return it, with `seconds_left` measured by the query. */
export interface LockRow {
  name: string;
  owner: string;
  /** A string where the driver returns bigints as strings. */
  fencing_token: string | number;
  locked_by: string | null;
  lock_process: number | null;
  locked_until: Date | null;
  created_at: Date;
  updated_at: Date;
  seconds_left: number | null;
}

export function recordFromRow(row: LockRow): LockRecord {
  return {
    name: row.name,
    owner: row.owner,
    fencingToken: Number(row.fencing_token),
    lockedBy: row.locked_by,
    lockProcess: row.lock_process,
    lockedUntil: row.locked_until,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    secondsLeft: row.seconds_left,
  };
}

export function holderOf(row: Pick<LockRow, 'locked_by' | 'locked_until' | 'seconds_left'>): HolderInfo {
  return { lockedBy: row.locked_by, lockedUntil: row.locked_until, secondsLeft: row.seconds_left };
}
