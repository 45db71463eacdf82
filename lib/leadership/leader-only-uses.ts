import type { LeadOptions } from './leadership';

/** @internal A method decorated with `@LeaderOnly`: the name it needs to lead, with what options, and where. */
export interface LeaderOnlyUse {
  name: string;
  options: LeadOptions | undefined;
  /** `Class.method`, for messages. */
  where: string;
}

const LEADER_ONLY_USES = Symbol('@LeaderOnly uses');

/** @internal Records, on the class, a method decorated with `@LeaderOnly`, for the campaigns started at bootstrap. */
export function recordLeaderOnlyUse(type: Function, use: LeaderOnlyUse): void {
  const own: LeaderOnlyUse[] = Reflect.getOwnMetadata(LEADER_ONLY_USES, type) ?? [];
  Reflect.defineMetadata(LEADER_ONLY_USES, [...own, use], type);
}

/** @internal The `@LeaderOnly` methods of a class, those it inherits included. */
export function leaderOnlyUses(type: Function): LeaderOnlyUse[] {
  const uses: LeaderOnlyUse[] = [];
  for (let current: unknown = type; typeof current === 'function' && current !== Function.prototype; current = Object.getPrototypeOf(current)) {
    uses.push(...((Reflect.getOwnMetadata(LEADER_ONLY_USES, current) as LeaderOnlyUse[] | undefined) ?? []));
  }
  return uses;
}
