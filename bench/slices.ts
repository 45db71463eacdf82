import type { Contender } from './contenders';

/** Pairs per second one contender completes in one slice, with `concurrency` workers (and its work beside them). */
async function runSlice(contender: Contender, concurrency: number, sliceMs: number): Promise<number> {
  const start = performance.now();
  const end = start + sliceMs;
  let pairs = 0;
  const beside = contender.beside?.(end);
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (performance.now() < end) {
        await contender.pair(worker);
        pairs++;
      }
    }),
  );
  await beside;
  return pairs / ((performance.now() - start) / 1000);
}

export function mean(values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Measures contenders side by side: short slices, taking turns in an order that rotates every
 * round, so whatever else loads the machine hits every contender alike. Returns the median rate of
 * each contender, in pairs per second, by label.
 */
export async function measureInSlices(
  contenders: Contender[],
  concurrency: number,
  { rounds, sliceMs }: { rounds: number; sliceMs: number },
): Promise<Map<string, number>> {
  for (const contender of contenders) await runSlice(contender, concurrency, sliceMs / 2);
  const rates = new Map(contenders.map((contender) => [contender.label, [] as number[]]));
  for (let round = 0; round < rounds; round++) {
    for (let turn = 0; turn < contenders.length; turn++) {
      const contender = contenders[(round + turn) % contenders.length];
      rates.get(contender.label)!.push(await runSlice(contender, concurrency, sliceMs));
    }
  }
  return new Map([...rates].map(([label, values]) => [label, median(values)]));
}

/**
 * One contender's rate at c=1 now, in pairs per second, from a few slices: taken just before the figure
 * it is compared with, so that the ratio holds even when the machine's speed drifts during a run.
 */
export async function rateJustBefore(contender: Contender, { sliceMs }: { sliceMs: number }): Promise<number> {
  return (await measureInSlices([contender], 1, { rounds: 4, sliceMs })).get(contender.label)!;
}

export function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(fraction * sorted.length) - 1)];
}
