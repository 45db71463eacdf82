/**
 * Measures that take processes of their own, one per app instance: the hand-off of a lock from one
 * to another, and many looping on one name. Each worker script answers the messages described here;
 * every message also carries the fields of the variant measured (its context), so that one set of
 * processes can take turns at several variants.
 */
import { WorkerProcess } from './worker-process';

/**
 * Release in one process, acquisition in another: how long the lock takes to change hands, in
 * milliseconds, from just before the release is sent to just after the waiter holds the lock; for
 * each context, its samples taken in turn with the others'. The script takes `acquire` (answers
 * `held`), `wait` (answers `waiting` at once, then `acquired` with the time it held the lock,
 * releasing it) and `release` (answers `released` with the time it began); times are
 * `process.hrtime`, the machine's monotonic clock, which every process on the host shares.
 */
export async function handoffLatencies(script: string, args: string[], samples: number, contexts: object[] = [{}]): Promise<number[][]> {
  const holder = new WorkerProcess(script, args);
  const waiter = new WorkerProcess(script, args);
  await Promise.all([holder.next(), waiter.next()]);
  const latencies = contexts.map(() => [] as number[]);
  try {
    for (let sample = -5; sample < samples; sample++) {
      for (const [index, context] of contexts.entries()) {
        const name = `handoff-${index}-${sample}`;
        await holder.request({ type: 'acquire', name, ...context });
        await waiter.request({ type: 'wait', name, ...context });
        // Let the waiter fail its first attempt and settle into waiting.
        await settle();
        const released = await holder.request<{ at: string }>({ type: 'release', name, ...context });
        const acquired = await waiter.next<{ at: string }>();
        if (sample >= 0) latencies[index].push(Number(BigInt(acquired.at) - BigInt(released.at)) / 1e6);
      }
    }
  } finally {
    await Promise.all([holder.stop(), waiter.stop()]);
  }
  return latencies;
}

/** The pause before each sample of a hand-off or of its floor: both processes idle, as a waiter is. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 30 + Math.random() * 20));

/**
 * The floor under a hand-off on PostgreSQL, in milliseconds, sampled in the hand-off's conditions (each
 * after the same idle pause): one acquire+release pair in the holder's process alone, and a bare NOTIFY
 * sent from it on a connection of its own and heard in the waiter's (`pg` alone). The script answers
 * `pair` (with `paired` and its `ms`), `listen` (then `heard`, with its time, for each notification)
 * and `notify` (with `notified` and the time it began).
 */
export async function handoffFloors(script: string, args: string[], samples: number): Promise<{ pairs: number[]; notices: number[] }> {
  const holder = new WorkerProcess(script, args);
  const waiter = new WorkerProcess(script, args);
  await Promise.all([holder.next(), waiter.next()]);
  const floors = { pairs: [] as number[], notices: [] as number[] };
  try {
    await waiter.request({ type: 'listen' });
    for (let sample = -5; sample < samples; sample++) {
      await settle();
      const { ms } = await holder.request<{ ms: number }>({ type: 'pair', name: `floor-${sample}` });
      await settle();
      const notified = await holder.request<{ at: string }>({ type: 'notify' });
      const heard = await waiter.next<{ at: string }>();
      if (sample < 0) continue;
      floors.pairs.push(ms);
      floors.notices.push(Number(BigInt(heard.at) - BigInt(notified.at)) / 1e6);
    }
  } finally {
    await Promise.all([holder.stop(), waiter.stop()]);
  }
  return floors;
}

export interface ContendedRun {
  processes: number;
  warmUpMs: number;
  durationMs: number;
}

/**
 * Processes of `script` looping acquire → release on one name against each other, each told `go`
 * with a `durationMs`: for each context in turn, first for the warm-up, then for the run measured.
 * Returns, for each context, what each process answered to its measured run.
 */
export async function contendedReports<T>(
  script: string,
  args: string[],
  { processes, warmUpMs, durationMs }: ContendedRun,
  contexts: object[] = [{}],
): Promise<T[][]> {
  const workers = Array.from({ length: processes }, () => new WorkerProcess(script, args));
  await Promise.all(workers.map((worker) => worker.next()));
  const run = (ms: number, context: object) =>
    Promise.all(workers.map((worker) => worker.request<T>({ type: 'go', durationMs: ms, ...context })));
  const reports: T[][] = [];
  try {
    for (const context of contexts) {
      // Warmed up like the slices the limit is measured in: connections open, statements prepared, code compiled.
      await run(warmUpMs, context);
      reports.push(await run(durationMs, context));
    }
    return reports;
  } finally {
    await Promise.all(workers.map((worker) => worker.stop()));
  }
}
