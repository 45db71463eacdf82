import type { Provider } from '@nestjs/common';
import { LockCleanupService } from './lock-cleanup.service';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { LockOperations } from './lock-operations';
import { LockMgrHealthIndicator } from './lockmgr.health';
import { LockMgrTelemetry } from './telemetry/lockmgr-telemetry';

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
  // Loads @opentelemetry/api at start-up, when it is installed, to record the metrics of the lock table.
  LockMgrTelemetry,
];

/** `@WithLock` injects the managers into the classes it decorates, in the app's own modules. */
export const LOCKMGR_EXPORTS = [LockService, LockManagers, LockMgrHealthIndicator];
