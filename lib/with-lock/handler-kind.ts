import { METHOD_METADATA } from '@nestjs/common/constants';

/**
 * Who calls a method, as its decorators say: a scheduler or an event (`skip`: nobody waits for the
 * result), an HTTP route, a GraphQL resolver, a microservice message handler (`rpc`), a WebSocket
 * gateway (`ws`), or code of the app (`call`).
 */
export type HandlerKind = 'skip' | 'http' | 'graphql' | 'rpc' | 'ws' | 'call';

/*
 * The packages that define these keys are optional peers, so their constants are matched by value:
 * `SCHEDULER_TYPE` of @nestjs/schedule (`@Cron`, `@Interval`, `@Timeout`), `EVENT_LISTENER_METADATA` of
 * @nestjs/event-emitter (`@OnEvent`), `PATTERN_HANDLER_METADATA` of @nestjs/microservices (its values
 * are `PatternHandler.MESSAGE` and `PatternHandler.EVENT`), `MESSAGE_MAPPING_METADATA` of
 * @nestjs/websockets (`@SubscribeMessage`) and `RESOLVER_NAME_METADATA` of @nestjs/graphql (`@Query`,
 * `@Mutation`, `@Subscription`, `@ResolveField`).
 */
const SCHEDULER_KEY = 'SCHEDULER_TYPE';
const SKIPPING_HANDLER_KEYS = [SCHEDULER_KEY, 'EVENT_LISTENER_METADATA'];
const MICROSERVICE_HANDLER_KEY = 'microservices:handler_type';
const EVENT_PATTERN_HANDLER = 2;
const WEBSOCKET_MESSAGE_KEY = 'websockets:message_mapping';
const GRAPHQL_RESOLVER_KEY = 'graphql:resolver_name';

const has = (key: string, handler: object) => Reflect.getMetadata(key, handler) !== undefined;

/** Whether a scheduler of @nestjs/schedule calls the method (`@Cron`, `@Interval`, `@Timeout`). Read at call time. */
export function isScheduled(handler: object): boolean {
  return has(SCHEDULER_KEY, handler);
}

/** Read at call time: the decorators that make a method a handler may come after `@WithLock`. */
export function handlerKind(handler: object): HandlerKind {
  if (SKIPPING_HANDLER_KEYS.some((key) => has(key, handler))) return 'skip';
  const microservice: unknown = Reflect.getMetadata(MICROSERVICE_HANDLER_KEY, handler);
  if (microservice !== undefined) return microservice === EVENT_PATTERN_HANDLER ? 'skip' : 'rpc';
  if (has(WEBSOCKET_MESSAGE_KEY, handler)) return 'ws';
  if (has(GRAPHQL_RESOLVER_KEY, handler)) return 'graphql';
  if (has(METHOD_METADATA, handler)) return 'http';
  return 'call';
}
