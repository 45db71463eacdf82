import { Inject } from '@nestjs/common';
import type { DataSource } from 'typeorm';
import { getLockServiceToken } from './lockmgr.tokens';

/**
 * Injects the `LockService` of the lock module on `dataSource` (its name, or the instance), for apps
 * with a lock table in more than one data source: `@InjectLockService('audit') auditLocks: LockService`.
 * Without an argument, the default data source's, the same as injecting `LockService`.
 */
export function InjectLockService(dataSource?: string | DataSource): PropertyDecorator & ParameterDecorator {
  return Inject(getLockServiceToken(dataSource));
}
