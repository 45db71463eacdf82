import { createHook } from 'node:async_hooks';
import { join } from 'node:path';

const LIBRARY = join(__dirname, '..', '..', 'lib');

/**
 * The timers the library's own code set and that are still pending: after its apps close, none should
 * be (a renewal or a waiter's poll left running keeps working for an app that is gone). Timers of
 * drivers and of the test are not counted: the frame that called setTimeout says whose it is.
 */
export class LibraryTimers {
  private readonly pending = new Map<number, string>();
  private readonly hook = createHook({
    init: (id, type) => {
      if (type !== 'Timeout') return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 30;
      const stack = new Error('set here').stack ?? '';
      Error.stackTraceLimit = limit;
      // The first frame outside Node's internals and this hook is the code that called setTimeout.
      const frames = stack.split('\n').slice(1).filter((line) => !line.includes('(node:') && !line.includes(__filename));
      if (frames[0]?.includes(LIBRARY)) this.pending.set(id, frames.join('\n'));
    },
    destroy: (id) => {
      this.pending.delete(id);
    },
  });

  start(): this {
    this.hook.enable();
    return this;
  }

  stop(): void {
    this.hook.disable();
    this.pending.clear();
  }

  /** Where each pending timer of the library was set. */
  get stillPending(): string[] {
    return [...this.pending.values()];
  }
}
