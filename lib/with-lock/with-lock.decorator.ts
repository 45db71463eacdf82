import type { LockManagers } from '../lock-managers';
import { getLockManagersToken, lockDataSourceName } from '../lockmgr.tokens';
import { injectProperty, instanceMethod, standIn } from '../decorated-method';
import { checkHoldOptions, ManagerHoldOptions } from '../lock-options';
import { checkDataSourceName, checkLockName, checkOneOf, checkOptions } from '../validation';
import { CronSchedule } from './cron-schedule';
import { runCronTick } from './cron-tick';
import { runHoldingObservables } from './observable-run';
import { isScheduled } from './handler-kind';
import { skip, skipAtShutdown, whenLocked, whenLockedBehaviour } from './when-locked';

/** Builds the lock name from the arguments of the call (called with the instance as `this`). */
export type LockNameFactory = (...methodArguments: any[]) => string;

export interface WithLockOptions extends ManagerHoldOptions {
  /** Lease in seconds, renewed every `expires / 3` while the method runs; 0 or null: never expires. Default: the module's `defaultExpires`. */
  expires?: number | null;
  /** Seconds to wait for the lock when it is held elsewhere. Default 0: do not wait. */
  wait?: number;
  /**
   * What a call does when the lock is held elsewhere. Default: scheduled, event and event-pattern handlers
   * skip the run, route handlers answer 423 Locked, GraphQL resolvers, message handlers and WebSocket
   * gateways reject with their context's error, any other caller gets `LockedError`. `'skip'` resolves
   * to undefined without running the method; `'throw'` rejects with `LockedError`.
   */
  onLocked?: 'skip' | 'throw';
  /** The name of the data source whose lock table holds the lock, in apps with several. Default: the default data source. */
  dataSource?: string;
}

const WITH_LOCK_OPTIONS = ['expires', 'wait', 'onLocked', 'autoRenew', 'minHold', 'dataSource'] as const;
const ON_LOCKED = ['skip', 'throw'] as const;

/**
 * The properties that Nest's dependency injection fills with the lock managers of each data source, on
 * every instance of a class that uses `@WithLock`.
 */
const lockManagersProperties = new Map<string, symbol>();

function lockManagersProperty(dataSource: string): symbol {
  let property = lockManagersProperties.get(dataSource);
  if (!property) lockManagersProperties.set(dataSource, (property = Symbol(`LockManagers of data source ${dataSource} for @WithLock`)));
  return property;
}

/**
 * Runs the method while holding a lock: `@WithLock('reports:nightly')`, or a name built from the
 * call's arguments, `@WithLock((id: string) => \`payment:${id}\`)`. The lock is taken before the method
 * starts, renewed while it runs, and released when the promise it returns settles (the decorated method
 * always returns a promise); when the method returns an Observable, when the subscription Nest makes to
 * it completes, errors or is unsubscribed. Works above or below `@Cron`, `@Interval`, `@Timeout`,
 * `@OnEvent`, route, resolver, message and gateway decorators, on methods of providers and controllers
 * created by Nest.
 *
 * On a `@Cron` method, each fire time of its schedule runs once across the cluster, with no `minHold`
 * to tune: a call is for the latest fire time by the caller's clock, and first takes that tick as a
 * lock of its own (`<name>@<fire time>`, kept for three periods), so a timer that fires late, or on a
 * clock that is behind, finds its tick taken and skips. Holds while the instances' timers and clocks
 * are off by up to a period; more than about two periods apart, a tick may run twice.
 *
 * Once the app has begun to shut down, a call from `@Cron`, `@Interval` or `@Timeout` is skipped (a
 * debug line); one that began before is waited for.
 */
export function WithLock(name: string | LockNameFactory, options?: WithLockOptions): MethodDecorator {
  if (typeof name !== 'function') checkLockName(name, '@WithLock name', Number.MAX_SAFE_INTEGER);
  const { onLocked, dataSource: given, ...managerOptions } = checkOptions<WithLockOptions>(options, '@WithLock options', WITH_LOCK_OPTIONS);
  checkOneOf(onLocked, '@WithLock option onLocked', ON_LOCKED);
  const dataSource = checkDataSourceName(given, '@WithLock option dataSource');
  const property = lockManagersProperty(lockDataSourceName(dataSource));
  checkHoldOptions(managerOptions, '@WithLock');

  return (target, propertyKey, descriptor) => {
    const { method, className, where } = instanceMethod('@WithLock', target, propertyKey, descriptor);
    injectProperty(target, property, getLockManagersToken(dataSource));

    const locked = async function (this: Record<symbol, LockManagers | undefined>, ...args: unknown[]): Promise<unknown> {
      const managers = this?.[property];
      if (!managers) {
        throw new Error(
          `@WithLock on ${where} has no LockService: create ${className} through Nest's dependency injection ` +
            '(a provider or controller in a module that sees LockMgrModule), not with "new".',
        );
      }
      const lockName = typeof name === 'function' ? name.apply(this, args) : name;
      const calledAt = performance.now();
      const work = () => method.apply(this, args);
      const caller = `@WithLock of ${where}`;
      // A scheduler's timer may fire once more while the app shuts down: that is new work, left to the
      // instances that go on (and to the next tick).
      if (managers.operations.stopping.aborted && isScheduled(locked)) return skipAtShutdown(where);
      // Read at call time, as the kind of handler is: @Cron may come after this decorator.
      const schedule = CronSchedule.of(locked);
      const run = schedule
        ? await managers.track(lockName, runCronTick(managers, schedule, lockName, managerOptions, work, caller))
        : await runHoldingObservables(managers, lockName, managerOptions, work, caller);
      if ('value' in run) return run.value;
      const behaviour = whenLockedBehaviour(onLocked, locked);
      if (behaviour === 'skip') return skip(managers, run.locked, where, calledAt);
      return whenLocked(behaviour, run.locked);
    };

    descriptor.value = standIn(method, locked) as typeof descriptor.value;
    return descriptor;
  };
}
