import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CounterWorkerSettings } from '../workers/counter-worker';
import { Finished, runScript } from './processes';
import type { TestDatabase } from './test-databases';

export interface CounterOutcome {
  processes: Finished[];
  /** The final value of each name's counter. */
  totals: Record<string, number>;
  /** The fencing tokens each name's resource saw, in the order of the writes. */
  tokens: Record<string, number[]>;
}

/** Runs `processes` app instances, each incrementing every name's counter `iterations` times under its lock. */
export async function runCounterProcesses(
  database: TestDatabase,
  tableName: string,
  { processes, lockNames, iterations }: { processes: number; lockNames: string[]; iterations: number },
): Promise<CounterOutcome> {
  const resourceDirectory = mkdtempSync(join(tmpdir(), `${tableName}-`));
  try {
    for (const name of lockNames) {
      writeFileSync(join(resourceDirectory, `${name}.counter`), '0');
      writeFileSync(join(resourceDirectory, `${name}.tokens`), '');
    }
    const settings: CounterWorkerSettings = {
      dataSourceOptions: database.dataSourceOptions(tableName),
      tableName,
      lockNames,
      iterations,
      resourceDirectory,
    };
    const finished = await Promise.all(
      Array.from({ length: processes }, () => runScript('workers/counter-worker.ts', [JSON.stringify(settings)])),
    );
    const read = (name: string, suffix: string) => readFileSync(join(resourceDirectory, `${name}.${suffix}`), 'utf8');
    return {
      processes: finished,
      totals: Object.fromEntries(lockNames.map((name) => [name, Number(read(name, 'counter'))])),
      tokens: Object.fromEntries(lockNames.map((name) => [name, read(name, 'tokens').trim().split('\n').map(Number)])),
    };
  } finally {
    rmSync(resourceDirectory, { recursive: true, force: true });
  }
}

/** Whether every token is greater than the one before it. */
export function strictlyIncreasing(tokens: number[]): boolean {
  return tokens.every((token, i) => i === 0 || token > tokens[i - 1]);
}
