import { createHook } from 'node:async_hooks';
import { join } from 'node:path';

const LIBRARY = join(__dirname, '..', '..', 'lib');

/** Node's timer object: marked destroyed as it fires (once) or is cleared, before the destroy hook is told. */
interface TimerResource {
  _destroyed?: boolean;
  _idleTimeout?: number;
}

/**
 * The timers the library's own code set and that are still pending: after its apps close, none should
 * be (a renewal or a waiter's poll left running keeps working for an app that is gone). Timers of
 * drivers and of the test are not counted: the frame that called setTimeout says whose it is. A timer
 * counts as pending until it fires or is cleared, as the timer itself tells: the destroy hook, which
 * forgets it, comes later, on a turn of the event loop.
 */
export class LibraryTimers {
  private readonly pending = new Map<number, { stack: string; timer: TimerResource }>();
  private readonly hook = createHook({
    init: (id, type, _trigger, resource) => {
      if (type !== 'Timeout') return;
      const limit = Error.stackTraceLimit;
      Error.stackTraceLimit = 30;
      const stack = new Error('set here').stack ?? '';
      Error.stackTraceLimit = limit;
      // The first frame outside Node's internals and this hook is the code that called setTimeout.
      const frames = stack.split('\n').slice(1).filter((line) => !line.includes('(node:') && !line.includes(__filename));
      if (frames[0]?.includes(LIBRARY)) this.pending.set(id, { stack: frames.join('\n'), timer: resource as TimerResource });
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

  /** Where each pending timer of the library was set, and in how many milliseconds it was due. */
  get stillPending(): string[] {
    return [...this.pending.values()].filter(({ timer }) => !timer._destroyed).map(({ stack, timer }) => `in ${timer._idleTimeout} ms, ${stack}`);
  }
}
