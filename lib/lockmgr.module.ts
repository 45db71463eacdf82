import { DynamicModule, Module } from '@nestjs/common';
import { openDialect } from './dialects/create-dialect';
import { LOCK_DIALECT, LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from './lockmgr.constants';
import { ConfigurableLockMgrModule, LOCKMGR_MODULE_OPTIONS, LOCKMGR_OPTIONS_TYPE } from './lockmgr.module-definition';
import { LOCKMGR_EXPORTS, LOCKMGR_IMPORTS, LOCKMGR_PROVIDERS } from './lockmgr.providers';
import { resolveLockMgrOptions } from './lockmgr-options';

/**
 * Distributed locks in the app's own database:
 * `LockMgrModule.forRoot({ … })` or `LockMgrModule.forRootAsync({ useFactory, inject, … })`,
 * next to the app's `TypeOrmModule`.
 */
@Module({
  imports: LOCKMGR_IMPORTS,
  providers: [
    { provide: LOCKMGR_OPTIONS, inject: [LOCKMGR_MODULE_OPTIONS], useFactory: resolveLockMgrOptions },
    {
      provide: LOCK_DIALECT,
      inject: [LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS],
      useFactory: openDialect,
    },
    ...LOCKMGR_PROVIDERS,
  ],
  exports: LOCKMGR_EXPORTS,
})
export class LockMgrModule extends ConfigurableLockMgrModule {
  /** The options are optional: `LockMgrModule.forRoot()` uses the default data source and every default. */
  static override forRoot(options: typeof LOCKMGR_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
