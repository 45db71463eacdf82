export * from './errors';
export { LockEntity } from './lock.entity';
export type { LockRecord } from './lock.entity';
export { InjectLockService } from './inject-lock-service.decorator';
export { LockService } from './lock.service';
export { getLockServiceToken } from './lockmgr.tokens';
export type {
  GetLockOptions,
  LockManagerOptions,
  ManagerHoldOptions,
  ManagerLockOptions,
  ManagerRenewOptions,
  RenewLockOptions,
  SetLockOptions,
} from './lock-options';
export { LockContext } from './lock-context';
export { LOCKMGR_CHANNELS } from './lock-events';
export type {
  DemotionReason,
  LockAcquiredMessage,
  LockDemotedMessage,
  LockElectedMessage,
  LockEventMessages,
  LockLostMessage,
  LockReleasedMessage,
  LockRenewedMessage,
  LockSkippedMessage,
} from './lock-events';
export { LockManager } from './lock-manager';
export type { LockSetResult, LockSetStatus } from './lock-set-result';
export { LockMgrHealthIndicator } from './lockmgr.health';
export type { LockMgrHealthResult } from './lockmgr.health';
export { LockMgrModule } from './lockmgr.module';
export type { LockMgrModuleExtras } from './lockmgr.module-definition';
export type { LockMgrModuleOptions } from './lockmgr-options';
export type { LockMgrOptionsFactory } from './lockmgr-options-factory';
export { createLockTableMigration, CreateLockTable1764115200000 } from './lock-table.migration';
export type { LockTableMigrationOptions } from './lock-table.migration';
export { LockedErrorFilter } from './locked-error.filter';
export { WithLock } from './with-lock/with-lock.decorator';
export type { LockNameFactory, WithLockOptions } from './with-lock/with-lock.decorator';
export { LeaderOnly } from './leadership/leader-only.decorator';
export { Leadership } from './leadership/leadership';
export type { ElectedOptions, LeadOptions } from './leadership/leadership';
