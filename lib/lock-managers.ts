import { Injectable, Logger } from '@nestjs/common';
import { LockedError } from './errors';
import { LockContext } from './lock-context';
import { LockManager } from './lock-manager';
import { checkHoldOptions, LOCK_MANAGER_OPTIONS, LockManagerOptions } from './lock-options';
import { LockOperations } from './lock-operations';
import { checkOptions } from './validation';

/** @internal How a locked run ended: the work's value, or the `LockedError` of an acquisition that found the lock held. */
export type LockedRun<T> = { value: T } | { locked: LockedError };

/**
 * @internal The managers of an app and the work running under their locks (`manager()`, `withLock`,
 * `@WithLock`): shutdown waits for that work to settle, then releases the managers still open.
 */
@Injectable()
export class LockManagers {
  private readonly logger = new Logger('LockService');
  /** Managers handed out by `manager()`: released at shutdown if their owner did not release them. */
  private readonly open = new Set<LockManager>();
  /** Runs of `withLock` and `@WithLock` in progress, with their lock names: shutdown waits for them. */
  private readonly runs = new Map<Promise<unknown>, string>();

  constructor(readonly operations: LockOperations) {}

  /** Takes `name` into a new manager that shutdown releases unless its owner does first; the `LockedError` when it is held. */
  async openManager(name: unknown, options: unknown, caller: string): Promise<LockManager | LockedError> {
    const manager = await this.take(name, options, caller, () => this.open.delete(manager as LockManager));
    if (manager instanceof LockManager) this.open.add(manager);
    return manager;
  }

  /**
   * Runs `work` holding `name`, or resolves to the `LockedError` of the acquisition when the lock is held
   * elsewhere, so that a `LockedError` thrown by `work` itself is never mistaken for it. Inside `work`,
   * `LockContext.current()` describes the lock. Application shutdown waits for the run to settle.
   */
  run<T>(name: unknown, options: unknown, work: (manager: LockManager) => T | Promise<T>, caller: string): Promise<LockedRun<T>> {
    return this.track(name, this.holdWhile(name, options, work, caller));
  }

  /**
   * Makes shutdown wait for `call` too, from before its first lock is taken: a call that takes more than
   * one lock (a `@Cron` tick's record, then its lock) must not find the store closed between the two.
   */
  track<T>(name: unknown, call: Promise<T>): Promise<T> {
    this.runs.set(call, String(name));
    const forget = () => this.runs.delete(call);
    call.then(forget, forget);
    return call;
  }

  /** Waits for the running work, then releases the managers still open. */
  async settle(): Promise<void> {
    if (this.runs.size > 0) {
      const names = [...new Set(this.runs.values())].map((name) => `"${name}"`).join(', ');
      this.logger.log(`Shutting down: waiting for the work holding ${names} to finish.`);
    }
    while (this.runs.size > 0) await Promise.allSettled([...this.runs.keys()]);
    const releases = [...this.open].map((manager) =>
      manager.release().catch((error) => this.logger.warn(`Releasing "${manager.mainLock.name}" at shutdown failed: ${error}`)),
    );
    await Promise.all(releases);
  }

  private async holdWhile<T>(
    name: unknown,
    options: unknown,
    work: (manager: LockManager) => T | Promise<T>,
    caller: string,
  ): Promise<LockedRun<T>> {
    const manager = await this.take(name, options, caller, () => undefined);
    if (manager instanceof LockedError) return { locked: manager };
    let value: T;
    try {
      value = await LockContext.run(manager, () => work(manager));
    } catch (error) {
      // The work's own error is the one worth seeing; a failed release only adds to it in the log.
      await manager.release().catch((releaseError) => this.logger.warn(`Releasing "${manager.mainLock.name}" failed: ${releaseError}`));
      throw error;
    }
    await manager.release();
    return { value };
  }

  private async take(name: unknown, options: unknown, caller: string, onRelease: () => void): Promise<LockManager | LockedError> {
    const { autoRenew, minHold, ...lockOptions } = checkOptions<LockManagerOptions>(options, `${caller} options`, LOCK_MANAGER_OPTIONS);
    const hold = checkHoldOptions({ autoRenew, minHold, ...lockOptions }, caller);
    const attempt = this.operations.requests.acquisition(name, lockOptions, caller);
    const mainLock = await this.operations.acquire(attempt);
    if (mainLock instanceof LockedError) return mainLock;
    return new LockManager(this.operations, mainLock, {
      ...hold,
      expires: attempt.request.expires,
      wait: attempt.wait,
      lockedBy: attempt.request.lockedBy,
      lockProcess: attempt.request.lockProcess,
      lossMargin: this.operations.options.operationTimeout,
      onRelease,
    });
  }
}
