import { Logger } from '@nestjs/common';
import type { LockedError } from '../errors';
import { lockChannels, secondsSince } from '../lock-events';
import type { LockManagers } from '../lock-managers';
import { HandlerKind, handlerKind } from './handler-kind';
import { lockedErrorFor } from './locked-errors';

const logger = new Logger('WithLock');

/**
 * What a `@WithLock` call does when the lock is held elsewhere: what its kind of handler does (skip the
 * run, or reject with that kind's error), unless `onLocked` says otherwise ('throw': as a plain call does).
 */
export function whenLockedBehaviour(onLocked: 'skip' | 'throw' | undefined, handler: object): HandlerKind {
  if (onLocked === 'skip') return 'skip';
  if (onLocked === 'throw') return 'call';
  return handlerKind(handler);
}

/** Skips the run: a debug line and a `skipped` lock event; the call resolves to undefined. */
export function skip(managers: LockManagers, error: LockedError, where: string, calledAt: number): undefined {
  logger.debug(`Skipped ${where}: ${error.message}`);
  if (lockChannels.skipped.hasSubscribers) {
    lockChannels.skipped.publish({ table: managers.operations.tableName, name: error.lockName, method: where, waited: secondsSince(calledAt), error });
  }
  return undefined;
}

/** Skips a scheduled run that fires once the app has begun to shut down: a debug line; the call resolves to undefined. */
export function skipAtShutdown(where: string): undefined {
  logger.debug(`Skipped ${where}: the app is shutting down.`);
  return undefined;
}

/** Rejects the call as its kind of handler expects. */
export function whenLocked(behaviour: Exclude<HandlerKind, 'skip'>, error: LockedError): never {
  throw lockedErrorFor(behaviour, error);
}
