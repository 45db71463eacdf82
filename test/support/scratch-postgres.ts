import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithOwnServer } from './local-servers';
import { PostgresServer, postgresPrograms } from './postgres-server';
import { unprivilegedUser } from './unprivileged-user';

/** A PostgreSQL server of a test's own, in a temporary folder: nobody else's connections or settings reach it. */
export interface ScratchPostgres {
  /** A postgres:// URL of `database` on it, as `user` (no password: the server trusts local connections). */
  url(database?: string, user?: string): string;
  stop(): Promise<void>;
}

/** Server settings, each passed as `-c name=value`, over those of its configuration file. */
export type ServerSettings = Record<string, string | number>;

const INSTALL = 'apt-get install -y postgresql';

async function startScratchPostgres(programs: string, settings: ServerSettings): Promise<ScratchPostgres> {
  const folder = mkdtempSync(join(tmpdir(), 'lockmgr-scratch-postgres-'));
  const user = unprivilegedUser('PostgreSQL');
  if (user) chownSync(folder, user.uid, user.gid);
  const stop = async () => {
    await server?.stop();
    rmSync(folder, { recursive: true, force: true });
  };
  let server: PostgresServer | undefined;
  try {
    server = await PostgresServer.initialize(programs, folder, 'data');
    await server.start(Object.fromEntries(Object.entries(settings).map(([name, value]) => [name, String(value)])));
  } catch (error) {
    await stop();
    throw error;
  }
  const { port } = server;
  return { url: (database = 'postgres', role = 'postgres') => `postgres://${role}@127.0.0.1:${port}/${database}`, stop };
}

/**
 * Defines `suite` with a PostgreSQL server of its own, started (`initdb` into a temporary folder, a free
 * port) before its tests with `settings`, and stopped and removed after them, whether they passed or not;
 * `server()` gives it once started. Without PostgreSQL's server programs the suite is skipped, saying
 * so, except under CI=true, where every suite must run: there it fails.
 */
export function describeOnScratchPostgres(title: string, settings: ServerSettings, suite: (server: () => ScratchPostgres) => void): void {
  describeWithOwnServer(
    title,
    {
      needs: 'PostgreSQL (initdb and postgres)',
      install: INSTALL,
      program: postgresPrograms(),
      start: (programs) => startScratchPostgres(programs, settings),
      stop: (server) => server.stop(),
      startTimeoutMs: 60_000,
      stopTimeoutMs: 30_000,
    },
    suite,
  );
}
