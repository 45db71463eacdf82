import type { Provider } from '@nestjs/common';
import { APP_FILTER, HttpAdapterHost } from '@nestjs/core';
import { LockCleanupService } from './lock-cleanup.service';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { LockedErrorFilter } from './locked-error.filter';
import { LockOperations } from './lock-operations';
import { LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import { LockMgrHealthIndicator } from './lockmgr.health';

/**
 * What every lock module provides on top of its store (`LOCK_DIALECT`) and its resolved options
 * (`LOCKMGR_OPTIONS`): `LockMgrModule` over a database, `LockMgrTestingModule` over memory.
 */
export const LOCKMGR_PROVIDERS: Provider[] = [
  LockOperations,
  LockManagers,
  LockService,
  LockCleanupService,
  // Loads @nestjs/terminus only when a check runs, so it costs nothing to apps without it.
  LockMgrHealthIndicator,
  // With the option off, nothing is registered (Nest skips a global filter a factory gives as null), so
  // the app's own filters, or Nest's, handle LockedError. A factory also waits for forRootAsync's options.
  {
    provide: APP_FILTER,
    inject: [LOCKMGR_OPTIONS, HttpAdapterHost],
    useFactory: (options: ResolvedLockMgrOptions, adapterHost: HttpAdapterHost) =>
      options.lockedErrorFilter ? new LockedErrorFilter(adapterHost) : null,
  },
];

/** `@WithLock` injects the managers into the classes it decorates, in the app's own modules. */
export const LOCKMGR_EXPORTS = [LockService, LockManagers, LockMgrHealthIndicator];
