import { HttpException, HttpStatus, Logger } from '@nestjs/common';
import { METHOD_METADATA } from '@nestjs/common/constants';
import type { LockedError } from '../errors';
import { lockChannels, secondsSince } from '../lock-events';
import type { LockManagers } from '../lock-managers';

/**
 * Metadata keys that mark a method as run by a scheduler or an event rather than by a caller waiting
 * for its result: `SCHEDULER_TYPE` of @nestjs/schedule (`@Cron`, `@Interval`, `@Timeout`) and
 * `EVENT_LISTENER_METADATA` of @nestjs/event-emitter (`@OnEvent`). Both packages are optional, so
 * their constants are not imported.
 */
const SKIPPING_HANDLER_KEYS = ['SCHEDULER_TYPE', 'EVENT_LISTENER_METADATA'];

const logger = new Logger('WithLock');

/** What a `@WithLock` call does when the lock is held elsewhere. */
export type LockedBehaviour = 'skip' | 'throw' | 'http';

/** Read at call time: the decorators that make a method a scheduled or route handler may come after this one. */
export function defaultWhenLocked(handler: object): LockedBehaviour {
  if (SKIPPING_HANDLER_KEYS.some((key) => Reflect.getMetadata(key, handler) !== undefined)) return 'skip';
  if (Reflect.getMetadata(METHOD_METADATA, handler) !== undefined) return 'http';
  return 'throw';
}

/** Skips the run: a debug line and a `skipped` lock event; the call resolves to undefined. */
export function skip(managers: LockManagers, error: LockedError, where: string, calledAt: number): undefined {
  logger.debug(`Skipped ${where}: ${error.message}`);
  if (lockChannels.skipped.hasSubscribers) {
    lockChannels.skipped.publish({ table: managers.operations.tableName, name: error.lockName, method: where, waited: secondsSince(calledAt), error });
  }
  return undefined;
}

/** Rejects the call as its kind of handler expects. */
export function whenLocked(behaviour: Exclude<LockedBehaviour, 'skip'>, error: LockedError): never {
  switch (behaviour) {
    case 'http':
      // The holder's host name stays out of the answer: clients only learn which lock is busy.
      throw new HttpException(
        {
          statusCode: HttpStatus.LOCKED,
          error: 'Locked',
          message: `Lock "${error.lockName}" is held by another request; try again later.`,
          lock: error.lockName,
        },
        HttpStatus.LOCKED,
        { cause: error },
      );
    case 'throw':
      throw error;
  }
}
