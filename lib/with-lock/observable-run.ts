import { Logger } from '@nestjs/common';
import { AsyncResource } from 'node:async_hooks';
import type { LockedRun, LockManagers } from '../lock-managers';
import { requireOptionalDependency } from '../optional-dependency';

/** What is used of an rxjs Observable and its subscriptions. rxjs is a peer of Nest's, never imported here. */
interface ObservableLike {
  subscribe(subscriber: object): { unsubscribe(): void };
}
type ObservableClass = new (subscribe: (subscriber: { error(error: unknown): void; complete(): void }) => () => void) => ObservableLike;

const logger = new Logger('WithLock');

/** Recognised by shape, as rxjs's own `isObservable` does. */
function isObservable(value: unknown): value is ObservableLike {
  const candidate = value as { lift?: unknown; subscribe?: unknown } | null;
  return typeof candidate?.lift === 'function' && typeof candidate.subscribe === 'function';
}

/**
 * Runs `work` holding the lock, as `LockManagers.run` does. When it returns an Observable (or a promise of
 * one), the call resolves at once to an Observable that keeps the lock until its subscription completes,
 * errors or is unsubscribed: Nest subscribes to what a handler returns as soon as it gets it, over HTTP,
 * microservices and WebSockets alike. One not subscribed by then lets the lock go. When the app shuts
 * down, a stream still open (server-sent events, a socket) completes, so that shutdown, which waits for
 * locked work, is not held up by a client that keeps reading.
 */
export function runHoldingObservables(
  managers: LockManagers,
  name: string,
  options: object,
  work: () => unknown,
  caller: string,
): Promise<LockedRun<unknown>> {
  return new Promise((resolve, reject) => {
    let handedOver = false;
    const held = async () => {
      const value = await work();
      if (!isObservable(value)) return value;
      return new Promise<void>((finished) => {
        handedOver = true;
        resolve({ value: holdWhileSubscribed(value, finished, managers.operations.stopping, `${caller} (${name})`) });
      });
    };
    managers.run(name, options, held, caller).then(resolve, (error: unknown) => {
      if (!handedOver) return reject(error);
      // The subscriber has had the Observable's end already; only the log can tell of the release.
      logger.warn(`Releasing "${name}" after the Observable of ${caller} ended failed: ${String(error)}`);
    });
  });
}

/**
 * An Observable that subscribes to `source` once, in the lock's `LockContext`, and calls `finished` when
 * that subscription ends (rxjs runs the teardown on completion, error and unsubscription alike), or when
 * nobody subscribed by the next turn of the event loop. `shutdown` completes it.
 */
function holdWhileSubscribed(source: ObservableLike, finished: () => void, shutdown: AbortSignal, where: string): ObservableLike {
  const { Observable } = requireOptionalDependency<{ Observable: ObservableClass }>('rxjs', 'to hold a lock while an Observable runs');
  const inLockContext = AsyncResource.bind(<T>(subscribe: () => T): T => subscribe());
  let state: 'waiting' | 'subscribed' | 'over' = 'waiting';
  const unclaimed = setImmediate(() => {
    if (state !== 'waiting') return;
    state = 'over';
    finished();
  });
  return new Observable((subscriber) => {
    if (state !== 'waiting') {
      subscriber.error(new Error(`The Observable of ${where} runs under its lock once: subscribe to it once, as soon as it is returned.`));
      return () => undefined;
    }
    state = 'subscribed';
    clearImmediate(unclaimed);
    const subscription = inLockContext(() => source.subscribe(subscriber));
    const end = () => subscriber.complete();
    if (shutdown.aborted) end();
    else shutdown.addEventListener('abort', end, { once: true });
    return () => {
      shutdown.removeEventListener('abort', end);
      subscription.unsubscribe();
      state = 'over';
      finished();
    };
  });
}
