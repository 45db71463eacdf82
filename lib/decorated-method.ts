import { Inject } from '@nestjs/common';
import { PROPERTY_DEPS_METADATA } from '@nestjs/common/constants';

/**
 * @internal Makes `wrapper` stand for `method`. Decorators applied before ours wrote their metadata on
 * the original method; those applied after it write on the wrapper. Copying keeps both on the method
 * Nest will find (`@Cron`, `@Interval`, route decorators…), and the wrapper keeps the method's name.
 */
export function standIn<Wrapper extends Function>(method: Function, wrapper: Wrapper): Wrapper {
  for (const key of Reflect.getOwnMetadataKeys(method)) {
    Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, method), wrapper);
  }
  Object.defineProperty(wrapper, 'name', { value: method.name });
  return wrapper;
}

/** @internal Has Nest's dependency injection fill `property` with `token` on every instance of the class of `prototype` (once per class). */
export function injectProperty(prototype: object, property: symbol, token: Function | string): void {
  const injected: { key: string | symbol }[] = Reflect.getMetadata(PROPERTY_DEPS_METADATA, prototype.constructor) ?? [];
  if (!injected.some((entry) => entry.key === property)) Inject(token)(prototype, property);
}

/** @internal The method a method decorator wraps, and how messages name it (`Class.method`); refuses anything but an instance method. */
export function instanceMethod(
  decorator: string,
  target: object,
  propertyKey: string | symbol,
  descriptor: PropertyDescriptor,
): { method: Function; className: string; where: string } {
  const method: unknown = descriptor.value;
  if (typeof target === 'function' || typeof method !== 'function') {
    throw new TypeError(`${decorator} decorates instance methods; ${String(propertyKey)} is not one.`);
  }
  const className = target.constructor.name;
  return { method, className, where: `${className}.${String(propertyKey)}` };
}
