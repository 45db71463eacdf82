import type { Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { LeaderCampaigns } from './leadership/leader-campaigns';
import { LockCleanupService } from './lock-cleanup.service';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { LockOperations } from './lock-operations';
import { LockMgrHealthIndicator } from './lockmgr.health';

/**
 * What every lock module provides on top of its store (`LOCK_DIALECT`) and its resolved options
 * (`LOCKMGR_OPTIONS`): `LockMgrModule` over a database, `LockMgrTestingModule` over memory.
 */
export const LOCKMGR_PROVIDERS: Provider[] = [
  LockOperations,
  LockManagers,
  LeaderCampaigns,
  LockService,
  LockCleanupService,
  // Loads @nestjs/terminus only when a check runs, so it costs nothing to apps without it.
  LockMgrHealthIndicator,
];

/** `@WithLock` and `@LeaderOnly` inject the managers and the leaderships into the classes they decorate, in the app's own modules. */
export const LOCKMGR_EXPORTS = [LockService, LockManagers, LeaderCampaigns, LockMgrHealthIndicator];

/** What every lock module imports: `@LeaderOnly` campaigns for the names of the decorated methods it finds at bootstrap. */
export const LOCKMGR_IMPORTS = [DiscoveryModule];
