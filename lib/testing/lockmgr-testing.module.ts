import { DynamicModule, Module } from '@nestjs/common';
import { LOCK_DIALECT, LOCKMGR_OPTIONS } from '../lockmgr.constants';
import { LOCKMGR_IMPORTS, LOCKMGR_PROVIDERS, lockMgrExports } from '../lockmgr.providers';
import { LockMgrModuleOptions, MODULE_OPTION_NAMES, resolveLockMgrOptions } from '../lockmgr-options';
import { checkBoolean, checkDataSourceName, checkOptions } from '../validation';
import type { LockClock } from './lock-clock';
import { MemoryDialect } from './memory.dialect';
import { MemoryLockStore } from './memory-lock-store';

/** What `LockMgrTestingModule.forRoot` configures: the options of `LockMgrModule.forRoot`. */
export interface LockMgrTestingOptions extends LockMgrModuleOptions {
  /**
   * The name of the data source whose lock module this one stands in for, in apps with several: the
   * `LockService` is then injected with `@InjectLockService(name)`. Default: the default data source.
   */
  dataSource?: string;
  /** The clock that decides when leases end: a `ManualLockClock` to move time in a test. Default: real time. */
  clock?: LockClock;
  /**
   * The in-memory lock table. Give two testing modules one store to test two instances of an app that
   * share a database. Default: a new store on `clock`.
   */
  store?: MemoryLockStore;
  /** Make `LockService` injectable everywhere without importing the module again. Default true. */
  isGlobal?: boolean;
}

/**
 * `LockMgrModule` for tests, with its lock table in memory: no database, the same `LockService`,
 * `LockManager`, `@WithLock` and `LockContext`, and every promise of the databases inside one process
 * (owner tokens, fencing tokens, expiry by the store's clock, waits and hand-off, shutdown).
 */
@Module({})
export class LockMgrTestingModule {
  static forRoot(options?: LockMgrTestingOptions): DynamicModule {
    const names = [...MODULE_OPTION_NAMES, 'dataSource', 'clock', 'store', 'isGlobal'] as const;
    const { dataSource: named, clock, store, isGlobal, ...moduleOptions } = checkOptions<LockMgrTestingOptions>(
      options,
      'LockMgrTestingModule options',
      names,
    );
    const dataSource = checkDataSourceName(named, 'LockMgrTestingModule option dataSource');
    if (store !== undefined && !(store instanceof MemoryLockStore)) {
      throw new TypeError('LockMgrTestingModule option store must be a MemoryLockStore.');
    }
    if (store && clock && store.clock !== clock) {
      throw new TypeError('LockMgrTestingModule options clock and store disagree: give the clock to the store, and only the store here.');
    }
    const table = store ?? new MemoryLockStore(clock);
    const resolved = resolveLockMgrOptions(moduleOptions, 'LockMgrTestingModule');
    const given = lockMgrExports(dataSource);
    return {
      module: LockMgrTestingModule,
      global: checkBoolean(isGlobal, 'LockMgrTestingModule option isGlobal') ?? true,
      imports: LOCKMGR_IMPORTS,
      providers: [
        { provide: LOCKMGR_OPTIONS, useValue: resolved },
        // A dialect per module, like a connection pool per app: closing one app leaves the store to the others.
        { provide: LOCK_DIALECT, useFactory: () => new MemoryDialect(table) },
        ...LOCKMGR_PROVIDERS,
        ...given.providers,
      ],
      exports: given.exports,
    };
  }
}
