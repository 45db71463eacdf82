import { ManualLockClock } from '../../lib/testing/manual-lock-clock';
import { MemoryLockStore } from '../../lib/testing/memory-lock-store';
import { MemoryDialect } from '../../lib/testing/memory.dialect';
import type { ContractStore } from './contract-store';
import { dialectContract } from './dialect-contract';

/** Tables are stores; time passes when the test moves the clock they share. */
function memoryContractStore(): ContractStore {
  const clock = new ManualLockClock();
  const stores = new Map<string, MemoryLockStore>();
  let tables = 0;
  return {
    announcesReleases: true,
    ordersByCodePoint: true,
    async createTable() {
      const table = `table-${++tables}`;
      stores.set(table, new MemoryLockStore(clock));
      return table;
    },
    openDialect: async (table) => new MemoryDialect(stores.get(table)!),
    async dropTable(table) {
      stores.delete(table);
    },
    async elapse(seconds) {
      clock.advance(seconds);
    },
  };
}

describe('The lock store contract on the in-memory store', () => dialectContract(memoryContractStore()));
