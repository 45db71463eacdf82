import { DynamicModule, Module } from '@nestjs/common';
import { openDialect } from './dialects/create-dialect';
import { LOCK_DIALECT, LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS } from './lockmgr.constants';
import { ConfigurableLockMgrModule, LOCKMGR_MODULE_OPTIONS, LOCKMGR_OPTIONS_TYPE } from './lockmgr.module-definition';
import { LockTableClaim } from './lock-table-claims';
import { LOCKMGR_IMPORTS, LOCKMGR_PROVIDERS } from './lockmgr.providers';
import { ResolvedLockMgrOptions, resolveLockMgrOptions } from './lockmgr-options';
import type { DataSource } from 'typeorm';

/**
 * Distributed locks in the app's own database:
 * `LockMgrModule.forRoot({ … })` or `LockMgrModule.forRootAsync({ useFactory, inject, … })`,
 * next to the app's `TypeOrmModule`.
 */
@Module({
  imports: LOCKMGR_IMPORTS,
  providers: [
    { provide: LOCKMGR_OPTIONS, inject: [LOCKMGR_MODULE_OPTIONS], useFactory: resolveLockMgrOptions },
    LockTableClaim,
    {
      provide: LOCK_DIALECT,
      // After the claim: a second module on the data source fails before it touches the table.
      inject: [LOCKMGR_DATA_SOURCE, LOCKMGR_OPTIONS, LockTableClaim],
      useFactory: async (dataSource: DataSource, options: ResolvedLockMgrOptions, claim: LockTableClaim) => {
        try {
          return await openDialect(dataSource, options);
        } catch (error) {
          claim.release();
          throw error;
        }
      },
    },
    ...LOCKMGR_PROVIDERS,
  ],
})
export class LockMgrModule extends ConfigurableLockMgrModule {
  /** The options are optional: `LockMgrModule.forRoot()` uses the default data source and every default. */
  static override forRoot(options: typeof LOCKMGR_OPTIONS_TYPE = {}): DynamicModule {
    return super.forRoot(options);
  }
}
