import { AsyncLocalStorage } from 'node:async_hooks';
import type { LockManager } from './lock-manager';

const storage = new AsyncLocalStorage<LockContext>();

/**
 * The lock held by the `@WithLock` method (or `withLock` work) that is running: `LockContext.current()`
 * anywhere in the code it calls, however deep, without passing the lock around.
 */
export class LockContext {
  private constructor(private readonly manager: LockManager) {}

  /**
   * The lock of the innermost `@WithLock` method or `withLock` work running in this asynchronous
   * context. Throws when there is none: code that needs the lock must only run under it.
   */
  static current(): LockContext {
    const context = storage.getStore();
    if (!context) {
      throw new Error('LockContext.current() was called outside a @WithLock method or withLock work: no lock is held here.');
    }
    return context;
  }

  /** @internal Runs `work` with the lock of `manager` as the current one. */
  static run<T>(manager: LockManager, work: () => T): T {
    return storage.run(new LockContext(manager), work);
  }

  /** The name of the lock. */
  get name(): string {
    return this.manager.mainLock.name;
  }

  /** Its fencing token: pass it to the resource you guard so it can refuse a holder whose lease ran out. */
  get fencingToken(): number {
    return this.manager.fencingToken;
  }

  /** Aborts, with a `LockLostError` as its reason, if the lock is lost while the work runs. */
  get signal(): AbortSignal {
    return this.manager.signal;
  }
}
