import { DynamicModule, Module } from '@nestjs/common';
import { openDialect } from './dialects/create-dialect';
import { LockCleanupService } from './lock-cleanup.service';
import { LockService } from './lock.service';
import { LockManagers } from './lock-managers';
import { LockOperations } from './lock-operations';
import { LockMgrHealthIndicator } from './lockmgr.health';
import { LOCK_DIALECT, LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from './lockmgr.constants';
import { ConfigurableLockMgrModule, LOCKMGR_MODULE_OPTIONS, LOCKMGR_OPTIONS_TYPE } from './lockmgr.module-definition';
import { resolveLockMgrOptions } from './lockmgr-options';

/**
 * Distributed locks in the app's own database:
 * `LockMgrModule.forRoot({ … })` or `LockMgrModule.forRootAsync({ useFactory, inject, … })`,
 * next to the app's `TypeOrmModule`.
 */
@Module({
  providers: [
    { provide: LOCKMGR_OPTIONS, inject: [LOCKMGR_MODULE_OPTIONS], useFactory: resolveLockMgrOptions },
    {
      provide: LOCK_DIALECT,
      inject: [LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS],
      useFactory: openDialect,
    },
    LockOperations,
    LockManagers,
    LockService,
    LockCleanupService,
    // Loads @nestjs/terminus only when a check runs, so it costs nothing to apps without it.
    LockMgrHealthIndicator,
  ],
  // `@WithLock` injects the managers into the classes it decorates, in the app's own modules.
  exports: [LockService, LockManagers, LockMgrHealthIndicator],
})
export class LockMgrModule extends ConfigurableLockMgrModule {
  /** The options are optional: `LockMgrModule.forRoot()` uses the default data source and every default. */
  static override forRoot(options: typeof LOCKMGR_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
