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
