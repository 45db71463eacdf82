import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { answering, describeWithOwnServer } from './local-servers';
import { closedPort } from './tcp-proxy';
import { POSTGRES_URL, testDatabase, TestDatabase } from './test-databases';
import { unprivilegedUser } from './unprivileged-user';

/** A PgBouncer of the test file's own, in transaction mode, in front of the test PostgreSQL server. */
export interface Pooler {
  /** A postgres:// URL to the test database through the pooler. */
  url: string;
  /** The test database, reached through the pooler. */
  database: TestDatabase;
}

const INSTALL = 'apt-get install -y pgbouncer';

/** Where the pgbouncer program is: Debian installs it in /usr/sbin, which is not on every user's path. */
function pgbouncerProgram(): string | undefined {
  const directories = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  return directories.map((directory) => join(directory, 'pgbouncer')).find((path) => path.startsWith('/') && existsSync(path));
}

async function startPgbouncer(program: string): Promise<{ pooler: Pooler; stop: () => Promise<void> }> {
  const server = new URL(POSTGRES_URL);
  // A port nothing listens on, for PgBouncer to listen on.
  const port = await closedPort();
  const directory = mkdtempSync(join(tmpdir(), 'lockmgr-pgbouncer-'));
  chmodSync(directory, 0o755);
  const settings = join(directory, 'pgbouncer.ini');
  writeFileSync(join(directory, 'userlist.txt'), `"${decodeURIComponent(server.username)}" ""\n`);
  writeFileSync(
    settings,
    [
      '[databases]',
      `* = host=${server.hostname} port=${server.port || 5432}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${join(directory, 'userlist.txt')}`,
      'pool_mode = transaction',
      'max_client_conn = 1000',
      'default_pool_size = 20',
      '',
    ].join('\n'),
  );
  let output = '';
  const child = spawn(program, [settings], { ...unprivilegedUser('PgBouncer'), stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = `postgres://${server.username}@127.0.0.1:${port}${server.pathname}`;
  const stop = async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(directory, { recursive: true, force: true });
  };
  try {
    await answering('PgBouncer', url, child, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  const database: TestDatabase = {
    ...testDatabase('postgres'),
    label: 'PostgreSQL behind PgBouncer (transaction mode)',
    dataSourceOptions: () => ({ type: 'postgres', url }),
  };
  return { pooler: { url, database }, stop };
}

/**
 * Defines `suite` with a PgBouncer started before its tests and stopped after them; `pooler()` gives it
 * once started. Without pgbouncer installed the suite is skipped, saying so, except under CI=true,
 * where every suite must run: there it fails.
 */
export function describeBehindPgbouncer(title: string, suite: (pooler: () => Pooler) => void): void {
  describeWithOwnServer(
    title,
    { needs: 'pgbouncer', install: INSTALL, program: pgbouncerProgram(), start: startPgbouncer, stop: (running) => running.stop() },
    (running) => suite(() => running().pooler),
    !testDatabase('postgres').available,
  );
}
