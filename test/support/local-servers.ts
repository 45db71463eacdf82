import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Client } from 'pg';

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** PostgreSQL and PgBouncer refuse to run as root: as root, the tests run them as the postgres user. */
export function unprivilegedUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find(([name]) => name === 'postgres');
  if (!entry) throw new Error('PostgreSQL and PgBouncer do not run as root, and there is no postgres user to run them as.');
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

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
