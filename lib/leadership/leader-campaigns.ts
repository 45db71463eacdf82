import { Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { LockManagers } from '../lock-managers';
import { DEFAULT_DATA_SOURCE_NAME, LOCKMGR_DATA_SOURCE_NAME } from '../lockmgr.constants';
import { leaderOnlyUses } from './leader-only-uses';
import { checkLeadOptions, Leadership } from './leadership';

/**
 * @internal The leaderships of an app, one per name: `lead()` of a name campaigning already returns its
 * `Leadership`, and the campaigns of the names `@LeaderOnly` methods need start at bootstrap. At
 * shutdown, campaigns stop first, then leaders resign, before the app's locks are settled.
 */
@Injectable()
export class LeaderCampaigns implements OnApplicationBootstrap {
  readonly #leaderships = new Map<string, Leadership>();
  #halted = false;

  constructor(
    readonly managers: LockManagers,
    private readonly discovery: DiscoveryService,
    @Inject(LOCKMGR_DATA_SOURCE_NAME) private readonly dataSourceName: string,
  ) {}

  /** The leadership of `name`, campaigning from now on unless it already was (then with the same options, or this throws). */
  lead(name: unknown, options: unknown, caller: string): Leadership {
    const checkedName = this.managers.operations.requests.name(name, `${caller} name`);
    const settings = checkLeadOptions(options, caller);
    const current = this.#leaderships.get(checkedName);
    if (current) {
      const { expires, lockedBy } = current.settings;
      if (expires !== settings.expires || lockedBy !== settings.lockedBy) {
        throw new Error(
          `${caller}: this app already campaigns for "${checkedName}" with expires ${expires}` +
            `${lockedBy === undefined ? '' : ` and lockedBy "${lockedBy}"`}; lead a name with the same options everywhere in an app.`,
        );
      }
      return current;
    }
    if (this.#halted) throw new Error(`${caller}: the application is shutting down, so no campaign for "${checkedName}" starts.`);
    const leadership: Leadership = new Leadership(this.managers, checkedName, settings, () => {
      if (this.#leaderships.get(checkedName) === leadership) this.#leaderships.delete(checkedName);
    });
    this.#leaderships.set(checkedName, leadership);
    return leadership;
  }

  /** The leadership of `name` campaigning now, if any. */
  current(name: string): Leadership | undefined {
    return this.#leaderships.get(name);
  }

  /** Campaigns for the name of every `@LeaderOnly` method of the app's providers and controllers. */
  onApplicationBootstrap(): void {
    // `@LeaderOnly` leads in the default data source's lock table: the other lock modules of an app do not campaign for it.
    if (this.dataSourceName !== DEFAULT_DATA_SOURCE_NAME) return;
    const types = new Set<Function>();
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      if (instance && typeof instance === 'object') types.add(instance.constructor);
      else if (typeof wrapper.metatype === 'function' && !wrapper.inject) types.add(wrapper.metatype);
    }
    for (const type of types) {
      for (const use of leaderOnlyUses(type)) this.lead(use.name, use.options, `@LeaderOnly of ${use.where}`);
    }
  }

  /** The first step of shutting down: no campaign starts or waits any more; leaders keep leading. */
  halt(): void {
    this.#halted = true;
    for (const leadership of [...this.#leaderships.values()]) leadership.halt();
  }

  /** Before the app's locks are settled: every leader resigns. */
  async resignAll(): Promise<void> {
    const leaderships = [...this.#leaderships.values()];
    this.#leaderships.clear();
    await Promise.all(leaderships.map((leadership) => leadership.stop('shutdown')));
  }
}
