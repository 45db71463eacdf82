import { ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { closedPort } from './tcp-proxy';
import { unprivilegedUser } from './unprivileged-user';

/** How long a server of a test's own may take to start or promote, and a program (initdb, pg_basebackup) to finish. */
const STEP_TIMEOUT_MS = 30_000;

/**
 * The process groups of the servers this process started: killed when it exits, however its tests
 * ended. A process killed outright leaves them running: `killServerIn` ends them on the next run.
 */
const running = new Set<number>();
process.once('exit', () => {
  for (const group of running) killGroup(group);
});

function killGroup(group: number): void {
  try {
    process.kill(-group, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/**
 * Kills the server still running in `directory` after the process that started it died. A postmaster
 * is known by its data directory on its command line, so a process id used again by another program
 * is left alone.
 */
export function killServerIn(directory: string): void {
  const pidFile = join(directory, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const command = `/proc/${pid}/cmdline`;
  if (pid > 0 && existsSync(command) && readFileSync(command, 'utf8').includes(directory)) killGroup(pid);
}

/** The folder of PostgreSQL's server programs: the newest version Debian's packages installed. */
export function postgresPrograms(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const [newest] = readdirSync(root)
    .filter((version) => existsSync(join(root, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return newest && join(root, newest, 'bin');
}

/** Runs one of PostgreSQL's programs as the server's user, and fails with its output if it fails or hangs. */
function runProgram(programs: string, program: string, args: string[]): Promise<void> {
  const child = spawn(join(programs, program), args, { ...unprivilegedUser('PostgreSQL'), stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STEP_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${program} ${args.join(' ')} failed (${signal ?? `code ${code}`}):\n${output}`));
    });
  });
}

/**
 * A PostgreSQL server of a test's own, in a data directory under `folder`, reached over TCP on a free
 * port. Its process runs in a group of its own: `kill()` ends the postmaster and every backend at
 * once, as when its machine dies.
 */
export class PostgresServer {
  private process?: ChildProcess;
  private exited?: Promise<void>;
  port = 0;

  private constructor(
    private readonly programs: string,
    private readonly folder: string,
    readonly name: string,
  ) {}

  get directory(): string {
    return join(this.folder, this.name);
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /**
   * A new database cluster, every connection from this host trusted (replication included). Its settings
   * are written in its configuration file, which its standbys' copies share.
   */
  static async initialize(programs: string, folder: string, name: string): Promise<PostgresServer> {
    const server = new PostgresServer(programs, folder, name);
    await runProgram(programs, 'initdb', ['-D', server.directory, '-U', 'postgres', '-A', 'trust', '--no-sync']);
    const settings = {
      listen_addresses: `'127.0.0.1'`,
      unix_socket_directories: `'${folder}'`,
      // Its machine never crashes, only its processes do: what they wrote reaches the disk from the page cache.
      fsync: 'off',
      shared_buffers: `'32MB'`,
      max_connections: '200',
      // A promotion that comes as the walreceiver fails waits this long (5 s by default) before it ends recovery.
      wal_retrieve_retry_interval: `'500ms'`,
    };
    appendFileSync(join(server.directory, 'postgresql.conf'), Object.entries(settings).map(([key, value]) => `${key} = ${value}\n`).join(''));
    return server;
  }

  /**
   * A copy of `primary` made by `pg_basebackup`, set up to start as its standby. Settings `primary` was
   * given with ALTER SYSTEM (`synchronous_standby_names`) are not carried over: a promoted standby
   * then waits for no standby of its own.
   */
  static async standbyOf(primary: PostgresServer, name: string): Promise<PostgresServer> {
    const server = new PostgresServer(primary.programs, primary.folder, name);
    await runProgram(primary.programs, 'pg_basebackup', [
      ...['-h', '127.0.0.1', '-p', String(primary.port), '-U', 'postgres'],
      ...['-D', server.directory, '--wal-method=stream', '--checkpoint=fast', '--no-sync'],
    ]);
    writeFileSync(join(server.directory, 'postgresql.auto.conf'), '');
    writeFileSync(join(server.directory, 'standby.signal'), '');
    return server;
  }

  /** Starts the server on a free port with `settings` (`-c` options, over its configuration files), and resolves once it accepts connections. */
  async start(settings: Record<string, string> = {}): Promise<void> {
    this.port = await closedPort();
    const options = { port: String(this.port), ...settings };
    const log = openSync(join(this.folder, `${this.name}.log`), 'a');
    const child = spawn(
      join(this.programs, 'postgres'),
      ['-D', this.directory, ...Object.entries(options).flatMap(([name, value]) => ['-c', `${name}=${value}`])],
      { ...unprivilegedUser('PostgreSQL'), detached: true, stdio: ['ignore', log, log] },
    );
    closeSync(log);
    this.process = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    running.add(child.pid!);
    const giveUpAt = performance.now() + STEP_TIMEOUT_MS;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`PostgreSQL ${this.name} did not start:\n${this.log()}`);
      try {
        await this.query('SELECT 1');
        return;
      } catch (error) {
        if (performance.now() > giveUpAt) {
          this.kill();
          throw new Error(`PostgreSQL ${this.name} did not accept connections within ${STEP_TIMEOUT_MS} ms (${error}):\n${this.log()}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  }

  log(): string {
    const path = join(this.folder, `${this.name}.log`);
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  /** One statement on a connection of its own, which gives up rather than hang on a server that stopped answering. */
  async query<Row = Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<Row[]> {
    const client = new Client({ connectionString: this.url, connectionTimeoutMillis: 2000, query_timeout: STEP_TIMEOUT_MS });
    client.on('error', () => undefined);
    try {
      await client.connect();
      return (await client.query(sql, values)).rows;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** Ends the server and every backend at once, with SIGKILL: nothing is flushed nor sent to a standby. */
  kill(): void {
    if (!this.process?.pid || !running.delete(this.process.pid)) return;
    killGroup(this.process.pid);
  }

  /** Kills the server, and resolves once its postmaster has exited (or failed to within the step timeout). */
  async stop(): Promise<void> {
    this.kill();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exited, new Promise((resolve) => (timer = setTimeout(resolve, STEP_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  /** Ends recovery: the standby becomes a primary, on a new timeline. */
  async promote(): Promise<void> {
    const seconds = STEP_TIMEOUT_MS / 2000;
    const [{ promoted }] = await this.query<{ promoted: boolean }>(`SELECT pg_promote(true, ${seconds}) AS promoted`);
    if (!promoted) throw new Error(`PostgreSQL ${this.name} was not promoted within ${seconds} s:\n${this.log()}`);
  }
}
