import { ConfigurableModuleBuilder, Provider } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { LOCKMGR_DATA_SOURCE } from './lockmgr.constants';
import { loadOptionalDependency } from './optional-dependency';
import { checkDataSourceName } from './validation';
import { lockMgrExports } from './lockmgr.providers';
import type { LockMgrModuleOptions } from './lockmgr-options';

/** Options that shape the module itself, given beside the options (and the factory of `forRootAsync`). */
export interface LockMgrModuleExtras {
  /** The TypeORM data source holding the lock table: its name, or the instance. Default: the default data source. */
  dataSource?: string | DataSource;
  /** Make `LockService` injectable everywhere without importing the module again. Default true. */
  isGlobal?: boolean;
}

function dataSourceProvider(dataSource: string | DataSource | undefined): Provider {
  if (dataSource instanceof DataSource) return { provide: LOCKMGR_DATA_SOURCE, useValue: dataSource };
  const name = checkDataSourceName(dataSource, 'LockMgrModule option dataSource', ' or a DataSource instance');
  return { provide: LOCKMGR_DATA_SOURCE, useExisting: typeOrmModule().getDataSourceToken(name) };
}

/**
 * @nestjs/typeorm, loaded when a module names its data source rather than at import: its version 12 is
 * an ES module only, which a test runner without `require(esm)` (jest on Node 20) cannot load, and
 * tests that use `nestjs-lockmgr/testing` or import `LockService` never need it.
 */
function typeOrmModule(): typeof import('@nestjs/typeorm') {
  const loaded = loadOptionalDependency<typeof import('@nestjs/typeorm')>('@nestjs/typeorm');
  if (!loaded) throw new Error('LockMgrModule needs @nestjs/typeorm to find its data source: install it with "npm install @nestjs/typeorm".');
  return loaded;
}

export const {
  ConfigurableModuleClass: ConfigurableLockMgrModule,
  MODULE_OPTIONS_TOKEN: LOCKMGR_MODULE_OPTIONS,
  OPTIONS_TYPE: LOCKMGR_OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE: LOCKMGR_ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<LockMgrModuleOptions>({ moduleName: 'LockMgr' })
  .setClassMethodName('forRoot')
  // The method a `useClass` / `useExisting` options class implements: `LockMgrOptionsFactory`.
  .setFactoryMethodName('createLockMgrOptions')
  // Every extra is listed, even when undefined, so the builder keeps it out of the options value.
  .setExtras<LockMgrModuleExtras>({ isGlobal: true, dataSource: undefined }, (definition, extras) => {
    const dataSource = dataSourceProvider(extras.dataSource);
    const given = lockMgrExports(extras.dataSource);
    return {
      ...definition,
      global: extras.isGlobal,
      providers: [...(definition.providers ?? []), dataSource, ...given.providers],
      exports: [...(definition.exports ?? []), ...given.exports],
    };
  })
  .build();
