import { HttpException, HttpStatus } from '@nestjs/common';
import type { LockedError } from '../errors';
import { requireOptionalDependency } from '../optional-dependency';
import type { HandlerKind } from './handler-kind';

/**
 * 423 Locked, as a route answers when its lock is held elsewhere. The holder's host name stays out of
 * the body: clients only learn which lock is busy. `cause` is the `LockedError`.
 */
export class LockedHttpException extends HttpException {
  constructor(readonly locked: LockedError) {
    super(
      { statusCode: HttpStatus.LOCKED, error: 'Locked', message: clientMessage(locked), lock: locked.lockName },
      HttpStatus.LOCKED,
      { cause: locked },
    );
  }
}

type ContextException = new (error: object) => Error;
interface GraphQLPackage {
  GraphQLError: new (message: string, options: { extensions: object; originalError: Error }) => Error;
}

/**
 * The error a handler of `kind` rejects with when its lock is held elsewhere: 423 Locked for a route, a
 * GraphQL error with `extensions.code` `'LOCKED'`, an `RpcException`, a `WsException`; the
 * `LockedError` itself elsewhere. The transport packages are loaded only for handlers of their own.
 */
export function lockedErrorFor(kind: Exclude<HandlerKind, 'skip'>, locked: LockedError): Error {
  const message = clientMessage(locked);
  switch (kind) {
    case 'http':
      return new LockedHttpException(locked);
    case 'graphql': {
      const { GraphQLError } = required<GraphQLPackage>('graphql');
      return new GraphQLError(message, { extensions: { code: 'LOCKED', lock: locked.lockName }, originalError: locked });
    }
    case 'rpc':
      return new (required<{ RpcException: ContextException }>('@nestjs/microservices').RpcException)(statusOf(message, locked));
    case 'ws':
      return new (required<{ WsException: ContextException }>('@nestjs/websockets').WsException)(statusOf(message, locked));
    case 'call':
      return locked;
  }
}

/**
 * Whole seconds until the holder's lease ends (a `Retry-After`), by the database's clock when the
 * acquisition measured it, else by this process's clock; undefined when the lease never ends or is unknown.
 */
export function retryAfterSeconds(locked: LockedError): number | undefined {
  const secondsLeft =
    locked.secondsLeft !== undefined ? locked.secondsLeft : locked.lockedUntil && (locked.lockedUntil.getTime() - Date.now()) / 1000;
  return secondsLeft == null ? undefined : Math.max(0, Math.ceil(secondsLeft));
}

function clientMessage(locked: LockedError): string {
  return `Lock "${locked.lockName}" is held elsewhere; try again later.`;
}

function statusOf(message: string, locked: LockedError): object {
  return { status: 'error', error: 'Locked', message, lock: locked.lockName };
}

const required = <T>(name: string) => requireOptionalDependency<T>(name, 'to answer a handler of its kind');
