import fc from 'fast-check';
import type { DriverFailure, Fault } from '../support/faulty-dialect';

/** The names a fault case uses. */
export const FAULT_NAMES = ['x', 'y'] as const;
export type FaultName = (typeof FAULT_NAMES)[number];
/** The lease of managers that renew themselves in a fault case: short, so that a held-back renewal can lose it. */
export const SHORT_LEASE = 0.9;

/** One step of a fault case, done by the app whose dialect is faulty (other instances contend through a healthy app). */
export type FaultStep =
  /** `getLock`; with `contended`, another instance holds the name and releases it while the call waits. */
  | { step: 'getLock'; name: FaultName; contended: boolean }
  /** A manager that renews itself on a short lease, held for `holdMs` while another instance keeps trying to take it. */
  | { step: 'manager'; name: FaultName; holdMs: number }
  | { step: 'setLock'; names: FaultName[]; fail: boolean }
  /** `getLock`, then `renewLock` through the handle. */
  | { step: 'renew'; name: FaultName }
  /** `getLock`, then `unlock` through the handle. */
  | { step: 'release'; name: FaultName };

/** Which call of the case (counted at the dialect, a waiter's sleep included) gets which fault. */
export interface PlannedFault {
  call: number;
  fault: Fault;
}

const name = fc.constantFrom(...FAULT_NAMES);
const failure = fc.constantFrom<DriverFailure>('timeout', 'connection reset');
/** Short, as long as a lease, and longer. */
const delay = fc.constantFrom(50, 600, 1500);

export const faultStep: fc.Arbitrary<FaultStep> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ step: fc.constant('getLock' as const), name, contended: fc.boolean() }) },
  { weight: 3, arbitrary: fc.record({ step: fc.constant('manager' as const), name, holdMs: fc.constantFrom(400, 1500) }) },
  {
    weight: 2,
    arbitrary: fc.record({ step: fc.constant('setLock' as const), names: fc.uniqueArray(name, { minLength: 1, maxLength: 2 }), fail: fc.boolean() }),
  },
  { weight: 1, arbitrary: fc.record({ step: fc.constant('renew' as const), name }) },
  { weight: 1, arbitrary: fc.record({ step: fc.constant('release' as const), name }) },
);

export const plannedFault: fc.Arbitrary<PlannedFault> = fc.record({
  call: fc.nat({ max: 10 }),
  fault: fc.oneof(
    fc.record({ kind: fc.constant('delay' as const), ms: delay }),
    fc.record({ kind: fc.constant('late-answer' as const), ms: delay }),
    fc.record({ kind: fc.constant('fail-before' as const), error: failure }),
    fc.record({ kind: fc.constant('fail-after' as const), error: failure, ms: fc.constantFrom(0, 600) }),
  ),
});
