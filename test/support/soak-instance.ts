import { FencedStore } from './fenced-store';
import { compiledScript, ScriptProcess } from './processes';
import type { SoakWorkerSettings, SoakWorkerStats } from '../workers/soak-worker';

export const emptyStats = (): SoakWorkerStats => ({ sections: 0, fencedOff: 0, heldTwice: 0, databaseErrors: 0, timedOut: 0, freezes: 0, lost: 0 });

export function addStats(total: SoakWorkerStats, more: SoakWorkerStats): void {
  for (const key of Object.keys(total) as (keyof SoakWorkerStats)[]) total[key] += more[key];
}

/** A soak worker process (`test/workers/soak-worker.ts`), restarted after it is killed; its statistics survive its deaths. */
export class SoakInstance {
  private process!: ScriptProcess;
  private latest = emptyStats();
  private readonly earlier = emptyStats();

  constructor(
    private readonly settings: SoakWorkerSettings,
    private readonly clockSkewMs = 0,
  ) {
    this.start();
  }

  private start(): void {
    const process = new ScriptProcess('workers/soak-worker.ts', [JSON.stringify(this.settings)], {
      execArgv: ['-r', compiledScript('workers/skewed-clock.ts')],
      env: { CLOCK_SKEW_MS: String(this.clockSkewMs) },
    });
    this.process = process;
    this.latest = emptyStats();
    const follow = (): Promise<void> =>
      process.nextEvent<SoakWorkerStats>().then(
        (stats) => {
          if (this.process === process) this.latest = stats;
          return follow();
        },
        () => undefined,
      );
    void follow();
  }

  /** What it has done so far, as it last reported (every 250 ms). */
  get stats(): SoakWorkerStats {
    const total = emptyStats();
    addStats(total, this.earlier);
    addStats(total, this.latest);
    return total;
  }

  async kill(): Promise<void> {
    this.process.kill('SIGKILL');
    await this.process.finished;
    for (const name of this.settings.lockNames) new FencedStore(this.settings.resourceDirectory, name).removeMarkOf(this.process.pid);
    addStats(this.earlier, this.latest);
    this.start();
  }

  /** Stops it with SIGTERM (it finishes its section first), or with SIGKILL if it has not stopped within a minute. */
  async stop(): Promise<SoakWorkerStats> {
    this.process.kill('SIGTERM');
    const killer = setTimeout(() => this.process.kill('SIGKILL'), 60_000);
    const { code, signal, stdout, stderr } = await this.process.finished;
    clearTimeout(killer);
    const output = `${stderr}\nIts last output: ${stdout.slice(-1000)}`;
    if (signal === 'SIGKILL') throw new Error(`A soak worker did not stop within a minute of SIGTERM: ${output}`);
    // No exit code: SIGTERM arrived before the worker had set up its handler (it had just restarted).
    if (code !== 0 && code !== null) throw new Error(`A soak worker failed (exit code ${code}): ${output}`);
    return this.stats;
  }
}
