/** Injection token of the checked module options (`ResolvedLockMgrOptions`). */
export const LOCKMGR_OPTIONS = Symbol('LOCKMGR_OPTIONS');
/** Injection token of the TypeORM `DataSource` that holds the lock table. */
export const LOCKMGR_DATA_SOURCE = Symbol('LOCKMGR_DATA_SOURCE');
/** Injection token of the database dialect (`LockDialect`). */
export const LOCK_DIALECT = Symbol('LOCK_DIALECT');
/** The name TypeORM gives the data source nobody named. */
export const DEFAULT_DATA_SOURCE_NAME = 'default';
/** Injection token of the name of the data source a lock module is on (`DEFAULT_DATA_SOURCE_NAME` for the default one). */
export const LOCKMGR_DATA_SOURCE_NAME = Symbol('LOCKMGR_DATA_SOURCE_NAME');
