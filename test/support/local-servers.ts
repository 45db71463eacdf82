import type { ChildProcess } from 'node:child_process';
import { Client } from 'pg';

/** Resolves once `url` answers a query, failing if `server` exits first or ten seconds pass. */
export async function answering(label: string, url: string, server: ChildProcess, output: () => string): Promise<void> {
  const giveUpAt = performance.now() + 10_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`${label} exited with code ${server.exitCode}:\n${output()}`);
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (performance.now() > giveUpAt) throw new Error(`${label} did not answer within 10 s (${error}):\n${output()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

/** A server a suite runs for itself: the program it needs, and how to start and stop it. */
export interface OwnServer<Running> {
  /** What the suite needs installed, as messages name it. */
  needs: string;
  /** The command that installs it. */
  install: string;
  /** Where the program is; undefined when it is not installed. */
  program: string | undefined;
  start(program: string): Promise<Running>;
  stop(running: Running): Promise<void>;
  /** How long starting may take, and stopping (jest's default otherwise). */
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
}

/**
 * Defines `suite` with a server of its own, started before its tests and stopped after them, whether they
 * passed or not (after the suite's own clean-up, which may still use it); `running()` gives it once
 * started. Without its program the suite is skipped, saying so, except under CI=true, where every suite
 * must run: there it fails. `skip` skips it for another reason, said elsewhere.
 */
export function describeWithOwnServer<Running>(
  title: string,
  server: OwnServer<Running>,
  suite: (running: () => Running) => void,
  skip = false,
): void {
  const { program, needs, install, startTimeoutMs, stopTimeoutMs } = server;
  if (!program && process.env.CI === 'true') {
    describe(title, () => {
      it(`needs ${needs}`, () => {
        throw new Error(`${needs} is not installed; under CI=true its suites must run. Install it with: ${install}`);
      });
    });
    return;
  }
  if (!program || skip) {
    if (!program) console.warn(`${needs} is not installed: "${title}" is SKIPPED. Install it with: ${install}`);
    describe.skip(title, () => suite(() => undefined as never));
    return;
  }
  let running: Running | undefined;
  describe(title, () => {
    beforeAll(async () => {
      running = await server.start(program);
    }, startTimeoutMs);
    suite(() => {
      if (running === undefined) throw new Error(`${needs} did not start for "${title}".`);
      return running;
    });
    afterAll(async () => {
      if (running !== undefined) await server.stop(running);
    }, stopTimeoutMs);
  });
}
