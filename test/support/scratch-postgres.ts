import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { answering, freePort, unprivilegedUser } from './local-servers';

/** A PostgreSQL server of a test's own, in a temporary folder: nobody else's connections or settings reach it. */
export interface ScratchPostgres {
  /** A postgres:// URL of `database` on it, as `user` (no password: the server trusts local connections). */
  url(database?: string, user?: string): string;
  stop(): Promise<void>;
}

/** Server settings, each passed as `-c name=value`. */
export type ServerSettings = Record<string, string | number>;

const INSTALL = 'apt-get install -y postgresql';

/** How long a stopping server may take to close its connections before it is killed. */
const STOP_TIMEOUT_MS = 10_000;

/** The server's programs: on the path, or where Debian installs them, the newest version first. */
function serverPrograms(): { initdb: string; postgres: string } | undefined {
  const debian = existsSync('/usr/lib/postgresql')
    ? readdirSync('/usr/lib/postgresql')
        .filter((version) => /^\d+$/.test(version))
        .sort((one, other) => Number(other) - Number(one))
        .map((version) => join('/usr/lib/postgresql', version, 'bin'))
    : [];
  const directories = [...(process.env.PATH ?? '').split(delimiter), ...debian].filter((directory) => directory.startsWith('/'));
  const directory = directories.find((candidate) => existsSync(join(candidate, 'initdb')) && existsSync(join(candidate, 'postgres')));
  return directory ? { initdb: join(directory, 'initdb'), postgres: join(directory, 'postgres') } : undefined;
}

async function startScratchPostgres(programs: { initdb: string; postgres: string }, settings: ServerSettings): Promise<ScratchPostgres> {
  const user = unprivilegedUser();
  const directory = mkdtempSync(join(tmpdir(), 'lockmgr-scratch-postgres-'));
  const data = join(directory, 'data');
  const remove = () => rmSync(directory, { recursive: true, force: true });
  if (user) chownSync(directory, user.uid, user.gid);
  const created = spawnSync(programs.initdb, ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], {
    ...user,
    cwd: directory,
    encoding: 'utf8',
  });
  if (created.status !== 0) {
    remove();
    throw new Error(`initdb failed (${created.error ?? `code ${created.status}`}):\n${created.stdout}${created.stderr}`);
  }
  const port = await freePort();
  const options = { listen_addresses: '127.0.0.1', unix_socket_directories: directory, fsync: 'off', ...settings };
  const args = ['-D', data, '-p', String(port), ...Object.entries(options).flatMap(([name, value]) => ['-c', `${name}=${value}`])];
  let output = '';
  const server = spawn(programs.postgres, args, { ...user, cwd: directory, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout!.on('data', (chunk) => (output += chunk));
  server.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const url = (database = 'postgres', role = 'postgres') => `postgres://${role}@127.0.0.1:${port}/${database}`;
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      // Fast shutdown: open connections are closed, not waited for.
      server.kill('SIGINT');
      const killer = setTimeout(() => server.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(killer);
    }
    remove();
  };
  try {
    await answering('PostgreSQL', url(), server, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url, stop };
}

/**
 * Defines `suite` with a PostgreSQL server of its own, started (`initdb` into a temporary folder, a free
 * port) before its tests with `settings`, and stopped and removed after them, whether they passed or not;
 * `server()` gives it once started. Without PostgreSQL's server programs the suite is skipped, saying
 * so, except under CI=true, where every suite must run: there it fails.
 */
export function describeOnScratchPostgres(title: string, settings: ServerSettings, suite: (server: () => ScratchPostgres) => void): void {
  const programs = serverPrograms();
  if (!programs && process.env.CI === 'true') {
    describe(title, () => {
      it('needs the PostgreSQL server programs', () => {
        throw new Error(`initdb and postgres are not installed; under CI=true their suites must run. Install them with: ${INSTALL}`);
      });
    });
    return;
  }
  if (!programs) {
    console.warn(`initdb and postgres are not installed: "${title}" is SKIPPED. Install them with: ${INSTALL}`);
    describe.skip(title, () => suite(() => undefined as never));
    return;
  }
  let running: ScratchPostgres | undefined;
  describe(title, () => {
    beforeAll(async () => {
      running = await startScratchPostgres(programs, settings);
    }, 60_000);
    suite(() => {
      if (!running) throw new Error('The scratch PostgreSQL server did not start.');
      return running;
    });
    afterAll(async () => {
      await running?.stop();
    }, 30_000);
  });
}
