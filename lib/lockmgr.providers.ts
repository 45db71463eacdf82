import type { DynamicModule, Provider } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule, HttpAdapterHost } from '@nestjs/core';
import type { DataSource } from 'typeorm';
import { LeaderCampaigns } from './leadership/leader-campaigns';
import { LockCleanupService } from './lock-cleanup.service';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { LockedErrorFilter } from './locked-error.filter';
import { LockOperations } from './lock-operations';
import { LOCKMGR_DATA_SOURCE_NAME, LOCKMGR_OPTIONS } from './lockmgr.constants';
import type { ResolvedLockMgrOptions } from './lockmgr-options';
import { LockMgrHealthIndicator } from './lockmgr.health';
import { getLockManagersToken, getLockServiceToken, lockDataSourceName } from './lockmgr.tokens';
import { LockMgrTelemetry } from './telemetry/lockmgr-telemetry';

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
  // Loads @opentelemetry/api at start-up, when it is installed, to record the metrics of the lock table.
  LockMgrTelemetry,
  // With the option off, nothing is registered (Nest skips a global filter a factory gives as null), so
  // the app's own filters, or Nest's, handle LockedError. A factory also waits for forRootAsync's options.
  {
    provide: APP_FILTER,
    inject: [LOCKMGR_OPTIONS, HttpAdapterHost],
    useFactory: (options: ResolvedLockMgrOptions, adapterHost: HttpAdapterHost) =>
      options.lockedErrorFilter ? new LockedErrorFilter(adapterHost) : null,
  },
];

/**
 * What a lock module on `dataSource` gives the app: `LockService` (and the managers `@WithLock` injects)
 * under the data source's tokens, so that the modules of several data sources never hide each other.
 * The default data source's module also gives the health indicator.
 */
export function lockMgrExports(dataSource?: string | DataSource): Required<Pick<DynamicModule, 'providers' | 'exports'>> {
  const name: Provider = { provide: LOCKMGR_DATA_SOURCE_NAME, useValue: lockDataSourceName(dataSource) };
  if (lockDataSourceName(dataSource) === lockDataSourceName()) {
    return { providers: [name], exports: [LockService, LockManagers, LeaderCampaigns, LockMgrHealthIndicator] };
  }
  const service = getLockServiceToken(dataSource);
  const managers = getLockManagersToken(dataSource);
  return {
    providers: [
      name,
      { provide: service, useExisting: LockService },
      { provide: managers, useExisting: LockManagers },
    ],
    exports: [service, managers],
  };
}

/** What every lock module imports: `@LeaderOnly` campaigns for the names of the decorated methods it finds at bootstrap. */
export const LOCKMGR_IMPORTS = [DiscoveryModule];
