import { ArgumentsHost, Catch, ExceptionFilter, HttpStatus } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { LockedError } from './errors';
import { requireOptionalDependency } from './optional-dependency';
import { LockedHttpException, lockedErrorFor, retryAfterSeconds } from './with-lock/locked-errors';

interface ContextFilterClass {
  new (): { catch(exception: unknown, host: ArgumentsHost): unknown };
}

/**
 * Answers a `LockedError` that escapes a handler (from `@WithLock`, or from `getLock` in a service) as the
 * handler's context expects: over HTTP, 423 Locked with a `Retry-After` header (whole seconds until the
 * holder's lease ends, when known) and the body `@WithLock` routes answer, without the holder's host
 * name; in a GraphQL resolver, an error with `extensions.code` `'LOCKED'`; in a microservice, an
 * `RpcException`; in a WebSocket gateway, a `WsException`. Elsewhere the error is passed on as it is.
 *
 * `LockMgrModule` registers it for the app unless its option `lockedErrorFilter` is false; an app that
 * registers its filters itself adds it with `{ provide: APP_FILTER, useClass: LockedErrorFilter }` or
 * `app.useGlobalFilters(new LockedErrorFilter(app.get(HttpAdapterHost)))`.
 */
@Catch(LockedError, LockedHttpException)
export class LockedErrorFilter implements ExceptionFilter<LockedError | LockedHttpException> {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  catch(exception: LockedError | LockedHttpException, host: ArgumentsHost): unknown {
    const locked = exception instanceof LockedHttpException ? exception.locked : exception;
    switch (host.getType<string>()) {
      case 'http':
        return this.answer(locked, host);
      case 'graphql':
        // A GraphQL exception filter returns the error the resolver reports.
        return lockedErrorFor('graphql', locked);
      case 'rpc':
        return contextFilter('@nestjs/microservices', 'BaseRpcExceptionFilter').catch(lockedErrorFor('rpc', locked), host);
      case 'ws':
        return contextFilter('@nestjs/websockets', 'BaseWsExceptionFilter').catch(lockedErrorFor('ws', locked), host);
      default:
        throw exception;
    }
  }

  private answer(locked: LockedError, host: ArgumentsHost): void {
    const adapter = this.adapterHost.httpAdapter;
    const response: unknown = host.switchToHttp().getResponse();
    // A response already under way (a stream) can only be ended.
    if (adapter.isHeadersSent(response)) return void adapter.end(response);
    const retryAfter = retryAfterSeconds(locked);
    if (retryAfter !== undefined) adapter.setHeader(response, 'Retry-After', String(retryAfter));
    adapter.reply(response, new LockedHttpException(locked).getResponse(), HttpStatus.LOCKED);
  }
}

/** Nest's own filter of a transport, which is installed since the handler that failed is one of its. */
function contextFilter(packageName: string, className: string): InstanceType<ContextFilterClass> {
  const transport = requireOptionalDependency<Record<string, ContextFilterClass>>(packageName, 'to answer a handler of its kind');
  return new transport[className]();
}
