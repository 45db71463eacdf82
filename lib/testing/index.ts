export type { LockClock } from './lock-clock';
export { LockMgrTestingModule } from './lockmgr-testing.module';
export type { LockMgrTestingOptions } from './lockmgr-testing.module';
export { ManualLockClock } from './manual-lock-clock';
export { MemoryLockStore } from './memory-lock-store';
