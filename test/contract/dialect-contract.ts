import { acquisitionContract } from './acquisition.contract';
import { ContractContext, ContractStore } from './contract-store';
import { expiryContract } from './expiry.contract';
import { ownerCheckContract } from './owner-check.contract';
import { releaseWaitingContract } from './release-waiting.contract';
import { renewalContract } from './renewal.contract';
import { setLocksContract } from './set-locks.contract';

/**
 * The contract of `LockDialect`, stated once for every lock store: defines its tests on a table that
 * several instances of the store's dialect share, as app instances share the lock table.
 */
export function dialectContract(store: ContractStore): void {
  const context = new ContractContext(store);
  context.useTable();
  acquisitionContract(context);
  ownerCheckContract(context);
  renewalContract(context);
  expiryContract(context);
  setLocksContract(context);
  releaseWaitingContract(context);
}
