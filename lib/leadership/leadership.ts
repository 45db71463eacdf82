import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { LockLostError } from '../errors';
import { DemotionReason, lockChannels, secondsSince } from '../lock-events';
import { LockManager } from '../lock-manager';
import type { LockManagers } from '../lock-managers';
import { lossMarginSeconds } from '../loss-margin';
import { checkOptions, checkSeconds, checkSignal, checkText, MAX_WAIT_SECONDS } from '../validation';

/** Options of `LockService.lead` and `@LeaderOnly`. */
export interface LeadOptions {
  /**
   * Seconds of the leader's lease, renewed every `expires / 3` while it leads. A leader that dies is
   * replaced within `expires` (and a second); one that cannot renew learns it before its lease ends.
   * Default 30. A leader's lease always ends: 0 and null are refused.
   */
  expires?: number;
  /** Recorded as `locked_by` of the leader's lock. Default: the module's `lockedBy` (the host name). */
  lockedBy?: string;
}

/** Options of `Leadership.elected`. */
export interface ElectedOptions {
  /** Stops waiting: the promise rejects with the signal's reason (the campaign goes on). */
  signal?: AbortSignal;
}

/** @internal `LeadOptions` checked, with their defaults. */
export interface LeadSettings {
  expires: number;
  lockedBy: string | undefined;
}

const DEFAULT_LEADER_EXPIRES = 30;
/** Shorter leases could not be renewed in time: a renewal is a round trip to the database. */
const SHORTEST_LEADER_EXPIRES = 0.1;
/** A campaign whose database calls fail tries again after this long (its waits retry by themselves). */
const RETRY_CAMPAIGN_MS = 1000;

/** @internal Checks the options of `lead()` and `@LeaderOnly` without the database, naming the argument at fault. */
export function checkLeadOptions(options: unknown, caller: string): LeadSettings {
  const given = checkOptions<LeadOptions>(options, `${caller} options`, ['expires', 'lockedBy']);
  if (given.expires === 0 || given.expires === null) {
    throw new RangeError(`${caller} option expires must be a number of seconds: a leader's lease must end, or a dead leader would never be replaced.`);
  }
  const expires = given.expires === undefined ? DEFAULT_LEADER_EXPIRES : checkSeconds(given.expires, `${caller} option expires`, undefined, SHORTEST_LEADER_EXPIRES);
  return { expires, lockedBy: checkText(given.lockedBy, `${caller} option lockedBy`) };
}

interface Term {
  manager: LockManager;
  /** Aborted, with a `LockLostError`, when the term ends: the leadership's `signal` during the term. */
  ended: AbortController;
  /** `performance.now()` at the election. */
  startedAt: number;
  /** The release of the term's lock, once the term has ended. */
  release?: Promise<void>;
  finish(): void;
}

const logger = new Logger('Leadership');

/**
 * This instance's candidacy for the leadership of a name, from `LockService.lead`: it campaigns in the
 * background until `resign()` or application shutdown, and leads while it holds the lock of the name.
 *
 * At most one instance leads a name at any moment, as the database decides: the leader holds the lock
 * and renews it every `expires / 3` seconds. `isLeader` is true only while this process's monotonic
 * clock says the lease surely lasts, so a leader whose event loop stalled past its lease reads false
 * before any of its timers runs. Each term has a fencing token greater than every earlier term's.
 */
export class Leadership {
  /** Aborted by `resign()` and at shutdown: no campaign starts any more, and a waiting one gives up. */
  readonly #campaigning = new AbortController();
  readonly #electedListeners = new Set<() => void>();
  readonly #campaign: Promise<void>;
  #term?: Term;
  #lastTerm?: Term;
  #stopped?: Promise<void>;

  /** @internal Made by `LockService.lead` and `@LeaderOnly`. */
  constructor(
    private readonly managers: LockManagers,
    /** The name led: the name of the leader's lock. */
    readonly name: string,
    /** @internal */
    readonly settings: LeadSettings,
    private readonly onStop: () => void,
  ) {
    this.#campaign = this.campaign();
  }

  /** Whether this instance leads now: it holds the lock and, by this process's clock, its lease surely lasts. */
  get isLeader(): boolean {
    return this.liveTerm() !== undefined;
  }

  /** The fencing token of this term; null when not leading. Pass it to the resources the leader writes, so they can refuse an earlier leader. */
  get fencingToken(): number | null {
    return this.liveTerm()?.manager.fencingToken ?? null;
  }

  /**
   * Aborts, with a `LockLostError` as its reason, when this term ends (resigned, lost, shutdown). Each
   * term has its own; when not leading, the signal of the last term, or one aborted already.
   */
  get signal(): AbortSignal {
    const term = this.liveTerm() ?? this.#lastTerm;
    return term?.ended.signal ?? AbortSignal.abort(new LockLostError(this.name, 'this instance has not been elected'));
  }

  /**
   * Resolves once this instance leads (at once if it does). Rejects with the reason of `signal` when it
   * aborts, and with an error when the campaign has stopped (`resign()`, shutdown) and this instance does not lead.
   */
  async elected(options?: ElectedOptions): Promise<void> {
    const signal = checkSignal(checkOptions<ElectedOptions>(options, 'elected options', ['signal']).signal, 'elected option signal');
    signal?.throwIfAborted();
    if (this.liveTerm()) return;
    const campaigning = this.#campaigning.signal;
    if (campaigning.aborted) throw this.notCampaigning();
    await new Promise<void>((resolve, reject) => {
      const settle = (outcome: () => void) => () => {
        this.#electedListeners.delete(onElected);
        signal?.removeEventListener('abort', onAbort);
        campaigning.removeEventListener('abort', onStop);
        outcome();
      };
      const onElected = settle(resolve);
      const onAbort = settle(() => reject(signal!.reason));
      const onStop = settle(() => reject(this.notCampaigning()));
      this.#electedListeners.add(onElected);
      signal?.addEventListener('abort', onAbort);
      campaigning.addEventListener('abort', onStop);
    });
  }

  /**
   * Stops campaigning and, when leading, ends the term and releases the lock at once, so that a waiting
   * instance takes over (within milliseconds on PostgreSQL, within the `pollInterval` elsewhere).
   * Resolves once the lock is released. A later `lead()` of the name starts a new campaign.
   */
  resign(): Promise<void> {
    return this.stop('resigned');
  }

  /** @internal No campaign starts any more, and a waiting one gives up; a term under way goes on (the first step of shutting down). */
  halt(): void {
    this.#campaigning.abort();
  }

  /** @internal `resign()`, for the given reason. */
  stop(reason: Exclude<DemotionReason, 'lost'>): Promise<void> {
    return (this.#stopped ??= (async () => {
      this.halt();
      this.onStop();
      const term = this.#term;
      const release = term && this.endTerm(term, reason, this.lostError(reason === 'resigned' ? 'the leader resigned' : 'the application shut down'));
      await this.#campaign;
      await release;
    })());
  }

  private lostError(why: string): LockLostError {
    return new LockLostError(this.name, why);
  }

  private notCampaigning(): Error {
    return new Error(`This instance campaigns no more for the leadership of "${this.name}": it resigned, or the application is shutting down.`);
  }

  /** The term under way, if its lease surely lasts; a term whose lease may have run out ends here and now. */
  private liveTerm(): Term | undefined {
    const term = this.#term;
    if (!term) return undefined;
    const secondsLeft = term.manager.mainLock.expiresSeconds;
    const margin = lossMarginSeconds(this.managers.operations.options.operationTimeout, this.settings.expires);
    if (secondsLeft !== null && secondsLeft > margin) return term;
    // The process stalled (or the renewals failed) past the point where the lease could be counted on.
    this.endTerm(term, 'lost', this.lostError('its lease was about to run out, and no renewal had reached the database'));
    return undefined;
  }

  private async campaign(): Promise<void> {
    const stop = this.#campaigning.signal;
    while (!stop.aborted) {
      const startedAt = performance.now();
      let manager: unknown;
      try {
        const { expires, lockedBy } = this.settings;
        manager = await this.managers.openManager(this.name, { expires, lockedBy, wait: MAX_WAIT_SECONDS, signal: stop }, 'lead');
      } catch (error) {
        if (stop.aborted) return;
        logger.warn(`The campaign for the leadership of "${this.name}" failed, and goes on: ${error}`);
        await sleep(RETRY_CAMPAIGN_MS, undefined, { signal: stop }).catch(() => undefined);
        continue;
      }
      // A `LockedError`: the wait, as long as a wait can be, ran out.
      if (!(manager instanceof LockManager)) continue;
      if (stop.aborted) {
        // Granted as the campaign stopped: the lock is let go of before the campaign ends.
        await manager.release().catch((error) => logger.warn(`Releasing "${this.name}" failed: ${error}`));
        return;
      }
      await this.serve(manager, startedAt);
    }
  }

  /** A term as leader: from the election until it ends, and its lock is released. */
  private async serve(manager: LockManager, campaignedAt: number): Promise<void> {
    let finish!: () => void;
    const over = new Promise<void>((resolve) => (finish = resolve));
    const term: Term = { manager, ended: new AbortController(), startedAt: performance.now(), finish };
    this.#term = this.#lastTerm = term;
    manager.signal.addEventListener('abort', () => this.endTerm(term, 'lost', manager.signal.reason as LockLostError), { once: true });
    if (lockChannels.elected.hasSubscribers) {
      const { tableName } = this.managers.operations;
      lockChannels.elected.publish({ table: tableName, name: this.name, fencingToken: manager.fencingToken, waited: secondsSince(campaignedAt) });
    }
    logger.log(`This instance leads "${this.name}" (fencing token ${manager.fencingToken}).`);
    for (const listener of [...this.#electedListeners]) listener();
    await over;
    await term.release;
  }

  /** Ends `term` once: its signal aborts, `demoted` is published, and its lock is released (owner-checked). */
  private endTerm(term: Term, reason: DemotionReason, error: LockLostError): Promise<void> {
    if (term.release) return term.release;
    if (this.#term === term) this.#term = undefined;
    term.ended.abort(error);
    if (lockChannels.demoted.hasSubscribers) {
      const { tableName } = this.managers.operations;
      const held = secondsSince(term.startedAt);
      lockChannels.demoted.publish({ table: tableName, name: this.name, fencingToken: term.manager.fencingToken, reason, held, error });
    }
    // A term handed over on purpose is news, not trouble: only a lost one is a warning, with its cause.
    if (reason === 'lost') logger.warn(`This instance no longer leads "${this.name}". ${error.message}`);
    else logger.log(`This instance no longer leads "${this.name}": ${reason === 'resigned' ? 'it resigned' : 'the application is shutting down'}.`);
    term.release = term.manager.release().catch((releaseError) => logger.warn(`Releasing "${this.name}" failed: ${releaseError}`));
    term.finish();
    return term.release;
  }
}
