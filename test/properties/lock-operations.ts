import fc from 'fast-check';

/** The clients of a case: lock services of separate Nest apps on one table, as separate instances would be. */
export const CLIENTS = 3;
/** Few names, so operations meet on them. */
export const NAMES = ['a', 'b', 'c'] as const;
export type Name = (typeof NAMES)[number];
/** Short leases that run out during a case, a long one, and none. */
const LEASES = [0.3, 0.7, 30, null] as const;

/** What a case does, one step after another: plain data, so a failure prints the shrunk sequence as it ran. */
export type Operation =
  | { op: 'getLock'; client: number; name: Name; expires: number | null; wait: number }
  | { op: 'tryLock'; client: number; name: Name; expires: number | null }
  | { op: 'unlockHandle'; client: number; handle: number }
  | { op: 'unlockName'; client: number; name: Name }
  | { op: 'renewLock'; client: number; handle: number | null; name: Name; expires: number | null; addTime: boolean; create: boolean }
  | { op: 'setLock'; client: number; names: Name[]; timeout: number | null; fail: boolean; renew: boolean; create: boolean }
  | { op: 'isLocked'; client: number; name: Name }
  | { op: 'listLocks'; client: number }
  | { op: 'manager'; client: number; name: Name; expires: number | null; autoRenew: boolean }
  | { op: 'managerLock'; manager: number; name: Name }
  | { op: 'managerRenew'; manager: number; expires: number }
  | { op: 'managerRelease'; manager: number }
  | { op: 'waitAbort'; client: number; name: Name; abortAfterMs: number }
  | { op: 'waitHandoff'; client: number; name: Name; releaseAfterMs: number }
  | { op: 'releaseWhileWaiting'; manager: number; name: Name }
  | { op: 'race'; racers: Racer[] }
  | { op: 'sleep'; ms: number };

/** An acquisition that runs at the same time as others: the scheduler picks the order they start in. */
export type Racer =
  | { op: 'tryLock'; client: number; name: Name }
  | { op: 'manager'; client: number; name: Name }
  | { op: 'setLock'; client: number; names: Name[]; fail: boolean };

const client = fc.nat({ max: CLIENTS - 1 });
const name = fc.constantFrom(...NAMES);
const names = fc.uniqueArray(name, { minLength: 1, maxLength: NAMES.length });
const lease = fc.constantFrom(...LEASES);
/** Index into the handles (or managers) a case got so far, modulo their number: older ones are often stale. */
const pick = fc.nat({ max: 20 });

const racer: fc.Arbitrary<Racer> = fc.oneof(
  fc.record({ op: fc.constant('tryLock' as const), client, name }),
  fc.record({ op: fc.constant('manager' as const), client, name }),
  fc.record({ op: fc.constant('setLock' as const), client, names, fail: fc.boolean() }),
);

export const operation: fc.Arbitrary<Operation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('getLock' as const), client, name, expires: lease, wait: fc.constantFrom(0, 0, 0.5) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('tryLock' as const), client, name, expires: lease }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('unlockHandle' as const), client, handle: pick }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('unlockName' as const), client, name }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('renewLock' as const),
      client,
      handle: fc.option(pick, { nil: null }),
      name,
      expires: lease,
      addTime: fc.boolean(),
      create: fc.boolean(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant('setLock' as const),
      client,
      names,
      timeout: lease,
      fail: fc.boolean(),
      renew: fc.boolean(),
      create: fc.boolean(),
    }),
  },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('isLocked' as const), client, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('listLocks' as const), client }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('manager' as const), client, name, expires: lease, autoRenew: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('managerLock' as const), manager: pick, name }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('managerRenew' as const), manager: pick, expires: fc.constantFrom(0.5, 30) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('managerRelease' as const), manager: pick }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('waitAbort' as const), client, name, abortAfterMs: fc.integer({ min: 20, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('waitHandoff' as const), client, name, releaseAfterMs: fc.integer({ min: 0, max: 300 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('releaseWhileWaiting' as const), manager: pick, name }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('race' as const), racers: fc.array(racer, { minLength: 2, maxLength: CLIENTS }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('sleep' as const), ms: fc.constantFrom(100, 350, 800) }) },
);
