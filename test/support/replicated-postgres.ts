import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeWithOwnServer } from './local-servers';
import { killServerIn, PostgresServer, postgresPrograms } from './postgres-server';
import { TcpProxy } from './tcp-proxy';
import { unprivilegedUser } from './unprivileged-user';

const FOLDER_PREFIX = 'lockmgr-replication-';
const INSTALL = 'apt-get install -y postgresql';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what runs killed before their teardown left behind: the servers still running in their
 * folders, then the folders. A folder whose test process still runs is another test file's.
 */
function removeLeftovers(): void {
  for (const entry of readdirSync(tmpdir()).filter((name) => name.startsWith(FOLDER_PREFIX))) {
    const folder = join(tmpdir(), entry);
    const owner = join(folder, 'owner');
    if (existsSync(owner) && alive(Number(readFileSync(owner, 'utf8')))) continue;
    for (const name of readdirSync(folder)) killServerIn(join(folder, name));
    rmSync(folder, { recursive: true, force: true });
  }
}

/**
 * A primary PostgreSQL server and, once `addStandby()` made one, its standby, streaming from it through
 * a proxy of its own (to cut replication on cue). Apps reach the primary through `url`, a TCP proxy
 * that plays the service address: `moveService()` leads it to the new primary after a failover.
 * Everything lives in one temporary folder, removed by `close()`.
 */
export class ReplicatedPostgres {
  private standby?: { server: PostgresServer; replication: TcpProxy };
  /** Every server started, dead or alive, so that `close()` leaves none running. */
  private readonly servers: PostgresServer[];

  private constructor(
    private readonly folder: string,
    private primary: PostgresServer,
    private readonly service: TcpProxy,
  ) {
    this.servers = [primary];
  }

  /** A new primary, in a new temporary folder; first removes what killed runs left behind. */
  static async start(programs: string): Promise<ReplicatedPostgres> {
    removeLeftovers();
    const folder = mkdtempSync(join(tmpdir(), FOLDER_PREFIX));
    writeFileSync(join(folder, 'owner'), String(process.pid));
    const user = unprivilegedUser('PostgreSQL');
    if (user) chownSync(folder, user.uid, user.gid);
    let primary: PostgresServer | undefined;
    try {
      primary = await PostgresServer.initialize(programs, folder, 'server1');
      await primary.start();
      return new ReplicatedPostgres(folder, primary, await TcpProxy.start('127.0.0.1', primary.port));
    } catch (error) {
      await primary?.stop();
      rmSync(folder, { recursive: true, force: true });
      throw error;
    }
  }

  /** The service address: a postgres:// URL that leads to the primary. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.service.port}/postgres`;
  }

  /** The current primary, reached directly. */
  get primaryServer(): PostgresServer {
    return this.primary;
  }

  /** The standby, reached directly. */
  get standbyServer(): PostgresServer {
    return this.currentStandby().server;
  }

  private currentStandby(): { server: PostgresServer; replication: TcpProxy } {
    if (!this.standby) throw new Error('There is no standby: call addStandby() first.');
    return this.standby;
  }

  /**
   * Copies the primary into a new standby and starts it streaming. A synchronous one is named in the
   * primary's `synchronous_standby_names`: every commit then waits until the standby has it on disk.
   * Resolves once the primary reports it streaming, in that mode.
   */
  async addStandby({ synchronous }: { synchronous: boolean }): Promise<void> {
    if (this.standby) throw new Error('The primary already has a standby.');
    const name = `server${this.servers.length + 1}`;
    const server = await PostgresServer.standbyOf(this.primary, name);
    this.servers.push(server);
    const replication = await TcpProxy.start('127.0.0.1', this.primary.port);
    this.standby = { server, replication };
    await server.start({ primary_conninfo: `host=127.0.0.1 port=${replication.port} user=postgres application_name=${name}` });
    await this.primary.query(`ALTER SYSTEM SET synchronous_standby_names = '${synchronous ? name : ''}'`);
    await this.primary.query('SELECT pg_reload_conf()');
    const mode = synchronous ? 'sync' : 'async';
    await this.untilReplication(`state = 'streaming' AND sync_state = '${mode}'`, `stream (${mode})`);
  }

  /** Resolves once the primary's view of its standby's replication matches `condition`. */
  private async untilReplication(condition: string, what: string): Promise<void> {
    const { server } = this.currentStandby();
    const giveUpAt = performance.now() + 30_000;
    while ((await this.primary.query(`SELECT FROM pg_stat_replication WHERE application_name = $1 AND ${condition}`, [server.name])).length === 0) {
      if (performance.now() > giveUpAt) throw new Error(`The standby ${server.name} did not ${what} within 30 s:\n${server.log()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /**
   * Once the standby has replayed everything the primary wrote so far, cuts it off: it receives nothing
   * more, and a primary that does not wait for it goes on committing what the standby will never have.
   */
  async cutReplication(): Promise<void> {
    const [{ written }] = await this.primary.query<{ written: string }>('SELECT pg_current_wal_lsn()::text AS written');
    await this.untilReplication(`replay_lsn >= '${written}'::pg_lsn`, 'catch up');
    this.currentStandby().replication.down();
  }

  /** Kills the primary and every backend with SIGKILL, as when its machine dies. */
  killPrimary(): void {
    this.primary.kill();
  }

  /** Promotes the standby: it is the primary from now on (apps reach it once the service moves). */
  async promoteStandby(): Promise<void> {
    const { server, replication } = this.currentStandby();
    await server.promote();
    await replication.close();
    this.primary = server;
    this.standby = undefined;
  }

  /** Leads the service address to the current primary; connections through it to the old one are cut. */
  moveService(): void {
    this.service.moveTo(this.primary.port);
  }

  /** Kills every server, closes the proxies and removes the folder. */
  async close(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
    await this.standby?.replication.close();
    await this.service.close();
    rmSync(this.folder, { recursive: true, force: true });
  }
}

/**
 * Defines `suite` with a primary PostgreSQL server of its own started before its tests, and everything
 * removed after them; `cluster()` gives it once started. Without PostgreSQL's server programs the suite
 * is skipped, saying so, except under CI=true, where every suite must run: there it fails.
 */
export function describeWithReplication(title: string, suite: (cluster: () => ReplicatedPostgres) => void): void {
  describeWithOwnServer(
    title,
    {
      needs: 'PostgreSQL (initdb, pg_basebackup)',
      install: INSTALL,
      program: postgresPrograms(),
      start: (programs) => ReplicatedPostgres.start(programs),
      stop: (cluster) => cluster.close(),
      startTimeoutMs: 60_000,
      stopTimeoutMs: 60_000,
    },
    suite,
  );
}
