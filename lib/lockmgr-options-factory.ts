import type { LockMgrModuleOptions } from './lockmgr-options';

/**
 * A class that gives the module its options: `LockMgrModule.forRootAsync({ useClass: LockSettings })`
 * (Nest creates it, injecting its dependencies), or `useExisting` for a provider the app already has.
 * `createLockMgrOptions()` is called once, at start-up.
 */
export interface LockMgrOptionsFactory {
  /** The module's options, checked as `forRoot`'s are: a bad one stops the app, naming it. */
  createLockMgrOptions(): LockMgrModuleOptions | Promise<LockMgrModuleOptions>;
}
