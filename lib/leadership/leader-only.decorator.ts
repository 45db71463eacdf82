import { LockedError } from '../errors';
import { injectProperty, instanceMethod, standIn } from '../decorated-method';
import { checkLockName } from '../validation';
import { skip } from '../with-lock/when-locked';
import { LeaderCampaigns } from './leader-campaigns';
import { recordLeaderOnlyUse } from './leader-only-uses';
import { checkLeadOptions, LeadOptions } from './leadership';

/** The property that Nest's dependency injection fills with the app's leaderships, on every instance of a class that uses `@LeaderOnly`. */
const LEADER_CAMPAIGNS = Symbol('LeaderCampaigns for @LeaderOnly');

/**
 * Runs the method only on the instance that leads `name`; elsewhere the call is skipped (it returns
 * undefined, logs at debug level, and publishes on the `skipped` lock event channel). The app campaigns
 * for `name` from bootstrap, as `LockService.lead(name, options)` does, and resigns at shutdown.
 * Whether this instance leads is read at each call, by this process's clock: a leader whose event loop
 * stalled past its lease skips the call. A leader's call runs as the method is (a synchronous method stays so).
 *
 * ```ts
 * @Interval(1000)
 * @LeaderOnly('indexer', { expires: 15 })
 * tick() { … }
 * ```
 */
export function LeaderOnly(name: string, options?: LeadOptions): MethodDecorator {
  checkLockName(name, '@LeaderOnly name', Number.MAX_SAFE_INTEGER);
  checkLeadOptions(options, '@LeaderOnly');

  return (target, propertyKey, descriptor) => {
    const { method, className, where } = instanceMethod('@LeaderOnly', target, propertyKey, descriptor);
    recordLeaderOnlyUse(target.constructor, { name, options, where });
    injectProperty(target, LEADER_CAMPAIGNS, LeaderCampaigns);

    const leaderOnly = function (this: Record<symbol, LeaderCampaigns | undefined>, ...args: unknown[]): unknown {
      const campaigns = this?.[LEADER_CAMPAIGNS];
      if (!campaigns) {
        throw new Error(
          `@LeaderOnly on ${where} has no LockService: create ${className} through Nest's dependency injection ` +
            '(a provider or controller in a module that sees LockMgrModule), not with "new".',
        );
      }
      if (campaigns.current(name)?.isLeader) return method.apply(this, args);
      return skip(campaigns.managers, new LockedError(name, null, `This instance does not lead "${name}".`), where, performance.now());
    };
    descriptor.value = standIn(method, leaderOnly) as typeof descriptor.value;
    return descriptor;
  };
}
