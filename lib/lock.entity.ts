import { Column, Entity, PrimaryColumn } from 'typeorm';

/** A row of the lock table as a dialect reads it, with the time left measured by the database's clock. */
export interface LockRecord {
  name: string;
  owner: string;
  fencingToken: number;
  lockedBy: string | null;
  lockProcess: number | null;
  lockedUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** Seconds from the database's "now" to `lockedUntil`; null when the lock never expires. */
  secondsLeft: number | null;
}

/** @internal Where a handle comes from: when its row was read, on which clock, and whether this process owns the lock. */
export interface HandleOrigin {
  requestedAt: number;
  elapsed: () => number;
  takenAt?: number;
  owned: boolean;
}

const bigintAsNumber = {
  from: (value: string | number | null) => (value === null ? value : Number(value)),
  to: (value: number | null) => value,
};

/**
 * One held lock: a row of the lock table, and the handle that `LockService` returns.
 *
 * Registering it with TypeORM is optional (to read the table through a repository). The table itself
 * is created by the `ensureTable` option or the migration, never by `synchronize`, which is why the
 * entity opts out of it.
 */
@Entity({ name: 'lockmgr_lock', synchronize: false })
export class LockEntity {
  @PrimaryColumn({ type: 'varchar', length: 255 })
  name!: string;

  /**
   * The secret token of this acquisition; releasing or renewing through this handle compares it. Null on
   * a description of a lock that may be another's (`listLocks`, `LockFailError.lock`, the locks `setLock`
   * found held, a renewal by name): owner-checked calls refuse it, so only its name can act on the lock.
   */
  @Column({ type: 'varchar', length: 36 })
  owner!: string | null;

  /** Grows with every acquisition of any lock; a resource that remembers the highest token it saw can refuse stale holders. */
  @Column({ name: 'fencing_token', type: 'bigint', transformer: bigintAsNumber })
  fencingToken!: number;

  @Column({ name: 'locked_by', type: 'varchar', length: 255, nullable: true })
  lockedBy!: string | null;

  @Column({ name: 'lock_process', type: 'integer', nullable: true })
  lockProcess!: number | null;

  /** When the lock expires; null when it never does. */
  @Column({ name: 'locked_until', nullable: true })
  lockedUntil!: Date | null;

  @Column({ name: 'created_at' })
  createdAt!: Date;

  @Column({ name: 'updated_at' })
  updatedAt!: Date;

  /**
   * When the lock expires by the store's clock, on the scale of `#elapsed` (the process's monotonic clock,
   * for a database), so that a skewed `Date.now()` cannot make a handle look alive or dead. Unset on rows
   * TypeORM loaded itself.
   */
  #expiresAtMonotonic?: number;

  /** Milliseconds on a scale that moves as the store's clock does. */
  #elapsed: () => number = monotonicMilliseconds;

  /** `performance.now()` at which this process asked for the lock it got: lock events say how long it was held. */
  #takenAt?: number;

  /**
   * @internal Builds a handle from a row read at `requestedAt` (a reading of `elapsed` taken before the
   * query was sent). `takenAt` is the `performance.now()` at which this process took the lock, if it did.
   * A handle that is not `owned` describes the lock without its owner token.
   */
  static fromRecord(record: LockRecord, { requestedAt, elapsed, takenAt, owned }: HandleOrigin): LockEntity {
    const { secondsLeft, owner, ...columns } = record;
    const lock = Object.assign(new LockEntity(), columns, { owner: owned ? owner : null });
    lock.#elapsed = elapsed;
    // Counting from before the request makes the estimate err on the early side.
    if (secondsLeft !== null) lock.#expiresAtMonotonic = requestedAt + secondsLeft * 1000;
    lock.#takenAt = takenAt;
    return lock;
  }

  /** @internal `performance.now()` when this process took the lock; undefined on handles of locks it did not take (descriptions, rows read through a repository). */
  get takenAt(): number | undefined {
    return this.#takenAt;
  }

  /** Seconds until the lock expires (negative once it has), or null when it never expires. */
  get expiresSeconds(): number | null {
    if (this.lockedUntil === null) return null;
    if (this.#expiresAtMonotonic !== undefined) return (this.#expiresAtMonotonic - this.#elapsed()) / 1000;
    return (this.lockedUntil.getTime() - Date.now()) / 1000;
  }

  /** Whether the lock has expired, as far as this handle knows. */
  get expired(): boolean {
    const left = this.expiresSeconds;
    return left !== null && left <= 0;
  }

  /** The owner token is a secret: serialising a lock (to log it, or answer an HTTP request) leaves it out. */
  toJSON(): Omit<LockEntity, 'owner' | 'toJSON' | 'expired' | 'expiresSeconds' | 'takenAt'> & { expiresSeconds: number | null } {
    const { owner: _owner, ...visible } = this;
    return { ...visible, expiresSeconds: this.expiresSeconds };
  }
}

function monotonicMilliseconds(): number {
  return performance.now();
}

/**
 * @internal Whether `value` is a lock handle rather than a name or an options object: a `LockEntity`,
 * or an object carrying an owner token (a row read through a repository, or a copy of a handle).
 */
export function isLockHandle(value: unknown): value is LockEntity {
  return value instanceof LockEntity || (typeof value === 'object' && value !== null && 'owner' in value);
}
