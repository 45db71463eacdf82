import { randomUUID } from 'node:crypto';
import type { AcquireRequest, LockDialect } from '../../lib/dialects/lock-dialect';
import type { LockRecord } from '../../lib/lock.entity';

/** A lock store under the dialect contract: how the suite opens its tables and dialects, and makes time pass. */
export interface ContractStore {
  /** Creates a new, empty lock table and returns its key. */
  createTable(): Promise<string>;
  /** Opens a dialect on `table` with connections of its own, as one app instance of many would. */
  openDialect(table: string): Promise<LockDialect>;
  /** Removes `table`, once every dialect opened on it is closed. */
  dropTable(table: string): Promise<void>;
  /** Lets `seconds` pass by the store's clock. */
  elapse(seconds: number): Promise<void>;
  /** Whether releases in other instances wake this one's waiters (`LockDialect.announcesReleases`). */
  announcesReleases: boolean;
  /** Whether `list` orders names by code point (binary collations); PostgreSQL follows the database's collation. */
  ordersByCodePoint: boolean;
}

/** A lease no test outlives. */
export const LONG_LEASE = 60;
/** A lease that `expire` outlasts; short, so that the SQL stores' real sleeps stay short. */
const SHORT_LEASE = 0.05;

/** Dialects in a suite: app instances sharing one table. */
const INSTANCES = 3;

/** What each part of the contract uses: the dialects on the suite's shared table, and helpers to use them. */
export class ContractContext {
  dialects: LockDialect[] = [];
  table!: string;
  private names = 0;

  constructor(readonly store: ContractStore) {}

  /** Opens the shared table for the suite (before all its tests) and closes it after them. */
  useTable(): void {
    beforeAll(async () => {
      this.table = await this.store.createTable();
      for (let i = 0; i < INSTANCES; i++) this.dialects.push(await this.store.openDialect(this.table));
    });
    afterAll(async () => {
      for (const dialect of this.dialects) await dialect.close();
      if (this.table) await this.store.dropTable(this.table);
    });
  }

  /** The first instance. */
  get a(): LockDialect {
    return this.dialects[0];
  }

  /** Another instance. */
  get b(): LockDialect {
    return this.dialects[1];
  }

  /** A lock name no other test uses. */
  name(label: string): string {
    return `${label}-${++this.names}`;
  }

  request(name: string, overrides: Partial<AcquireRequest> = {}): AcquireRequest {
    return { name, owner: randomUUID(), expires: LONG_LEASE, lockedBy: 'contract', lockProcess: 1, ...overrides };
  }

  /** Acquires a name that must be free. */
  async take(dialect: LockDialect, name: string, overrides: Partial<AcquireRequest> = {}): Promise<LockRecord> {
    const result = await dialect.acquire(this.request(name, overrides));
    if (!result.acquired) throw new Error(`Lock "${name}" was expected to be free, but ${result.holder?.lockedBy} holds it.`);
    return result.lock;
  }

  /** Acquires a name that must be free with a lease that the next `expire` ends. */
  takeBriefly(dialect: LockDialect, name: string, overrides: Partial<AcquireRequest> = {}): Promise<LockRecord> {
    return this.take(dialect, name, { ...overrides, expires: SHORT_LEASE });
  }

  /** Shortens a held lock's lease so that the next `expire` ends it. */
  async shorten(name: string): Promise<void> {
    expect(await this.a.renew({ name, owner: null, expires: SHORT_LEASE, mode: 'set' })).not.toBeNull();
  }

  /** Lets every lease taken with `takeBriefly` or cut by `shorten` run out. */
  expire(): Promise<void> {
    return this.store.elapse(SHORT_LEASE * 2);
  }
}

/** Expects `seconds` (time left on a lease) to be `expected`, less the time a few round trips take. */
export function expectSecondsLeft(seconds: number | null, expected: number): void {
  expect(seconds).not.toBeNull();
  expect(seconds!).toBeLessThanOrEqual(expected + 0.001);
  expect(seconds!).toBeGreaterThan(expected - 2);
}
