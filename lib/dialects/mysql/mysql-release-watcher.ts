import type { Connection, RowDataPacket } from 'mysql2/promise';
import { setTimeout as pause } from 'node:timers/promises';
import { untilLeaseEnds } from '../watched-waiting';
import type { mysqlWatchStatements } from './mysql-statements';

/** The longest sleep of the watching connection; MariaDB checks every few seconds of it that the client is still there. */
const SLEEP_SECONDS = 60;
/** How long the watching connection stays open once nothing waits, so that waits in a row reuse it. */
const IDLE_CONNECTION_MS = 10_000;
/** Reconnection backs off up to this, so a database that stays down is not hammered. */
const MAX_RECONNECT_DELAY_MS = 5000;

/** Whether a statement failed because KILL QUERY interrupted it (MariaDB's error 1317). */
const interrupted = (error: unknown) => (error as { errno?: number }).errno === 1317;

/** What the watching connection does next for a name: take its flag, check its lock, sleep on it, or nothing. */
type WatchState = 'unflagged' | 'checking' | 'armed' | 'fired' | 'elsewhere';

interface Watch {
  /** Waits of this process for the name. */
  waits: number;
  state: WatchState;
  /** Sleeps about to begin, waiting to hear how long they may last. */
  pending: { resolve(ms: number): void; reject(error: unknown): void }[];
}

/** One wait's use of the watcher. */
export interface ReleaseWatch {
  /** Resolves once a release of the name will wake this process: 0 if it is free already, else how long to sleep at most. */
  armed(): Promise<number>;
  stop(): void;
}

export interface MysqlReleaseWatcherOptions {
  statements: ReturnType<typeof mysqlWatchStatements>;
  /** Opens the watching connection (its session has no statement limit). */
  connect(): Promise<Connection>;
  /** Interrupts the statement of a connection (KILL QUERY), from another connection. */
  interrupt(threadId: number): Promise<void>;
  onRelease(name: string): void;
  /** After a gap in which releases may have gone unseen (a dropped connection), every waiter should look again. */
  onGap(): void;
  /** Seconds a statement other than the sleep may take. */
  operationTimeout: number;
}

/**
 * MariaDB: wakes this process's waiters when another process releases their lock. There is no
 * LISTEN/NOTIFY, so a wait announces itself with a named lock derived from the lock's name, held by the
 * app's one watching connection; a release reads who holds that named lock in its own statement
 * (`DELETE … RETURNING IS_USED_LOCK(…)`), and only if someone does, interrupts that connection's
 * statement (KILL QUERY). The watching connection spends its waits in `SLEEP`, entered only if every
 * lock it watches is still held; interrupted or not, it then reads which ones are free and wakes their
 * waiters. Each named lock is one connection's, so for a lock waited for in several apps, only the
 * first app's waiters are woken; the others poll. Nothing depends on the wake-up: a missed one costs
 * a poll.
 *
 * The connection is opened by the first wait and closed once none has used it for a while.
 */
export class MysqlReleaseWatcher {
  private readonly watches = new Map<string, Watch>();
  /** Names whose flags are still held though no wait wants them any more. */
  private readonly unwanted = new Set<string>();
  private connection?: Connection;
  private connecting?: Promise<Connection>;
  private running = false;
  /** The number of the sleep statement under way, if one is; each has its own. */
  private sleeping?: number;
  private sleeps = 0;
  /** The sleep being interrupted for a change here, if one is. */
  private interrupting?: number;
  /** Ends the pauses between interruptions at shutdown. */
  private readonly closing = new AbortController();
  /** Set while the connection is down: waits poll meanwhile. */
  private reconnectTimer?: NodeJS.Timeout;
  private reconnectDelayMs = 100;
  private idleTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly options: MysqlReleaseWatcherOptions) {}

  /** The server's id of the watching connection, while it is open: a release need not interrupt it for this process's own waiters. */
  get threadId(): number | undefined {
    return this.connection?.threadId ?? undefined;
  }

  watch(name: string): ReleaseWatch {
    clearTimeout(this.idleTimer);
    this.unwanted.delete(name);
    let watch = this.watches.get(name);
    if (!watch) this.watches.set(name, (watch = { waits: 0, state: 'unflagged', pending: [] }));
    watch.waits++;
    let stopped = false;
    return {
      armed: () => this.armed(watch),
      stop: () => {
        if (stopped) return;
        stopped = true;
        if (--watch.waits > 0) return;
        this.watches.delete(name);
        // A sleep of the wait that ended another way (woken here, aborted) no longer listens.
        this.settle(watch, Infinity);
        if (watch.state !== 'elsewhere') this.unwanted.add(name);
        this.kick();
      },
    };
  }

  private armed(watch: Watch): Promise<number> {
    if (this.closed || this.reconnectTimer) return Promise.reject(new Error('The watching connection is down.'));
    // Flagged and checked, and no release seen since: the flag is still ours, so a release will interrupt the sleep.
    if (watch.state === 'armed') return Promise.resolve(Infinity);
    if (watch.state === 'fired') watch.state = 'checking';
    if (watch.state === 'elsewhere') watch.state = 'unflagged';
    return new Promise((resolve, reject) => {
      watch.pending.push({ resolve, reject });
      this.kick();
    });
  }

  /** Has the watching connection look at what changed: at once if it is idle, by interrupting its sleep otherwise. */
  private kick(): void {
    if (this.closed) return;
    if (this.sleeping !== undefined && this.interrupting !== this.sleeping && this.connection?.threadId) {
      this.interrupting = this.sleeping;
      void this.interruptSleep(this.sleeping, this.connection.threadId);
    }
    if (!this.running && !this.reconnectTimer) void this.run();
  }

  /**
   * Ends a sleep, for a change here or at shutdown. A KILL that reaches the server before the sleep
   * statement has begun is lost, so it is sent again, less and less often, while that same sleep goes on.
   */
  private async interruptSleep(sleep: number, threadId: number, giveUpAt = Infinity): Promise<void> {
    for (let delayMs = 5; this.sleeping === sleep && performance.now() < giveUpAt; delayMs = Math.min(delayMs * 2, 1000)) {
      await this.options.interrupt(threadId).catch(() => undefined);
      await pause(delayMs, undefined, { signal: this.closing.signal }).catch(() => undefined);
      if (this.closing.signal.aborted) return;
    }
  }

  private async run(): Promise<void> {
    this.running = true;
    for (;;) {
      const names = (state: WatchState) => [...this.watches].filter(([, watch]) => watch.state === state).map(([name]) => name);
      const [unflagged, checking, armed] = [names('unflagged'), names('checking'), names('armed')];
      if (this.closed || (!this.unwanted.size && !unflagged.length && !checking.length && !armed.length)) {
        // Decided and marked in one step, so a kick from now on starts a new run.
        this.running = false;
        if (this.watches.size === 0) this.closeWhenIdle();
        return;
      }
      try {
        const connection = await (this.connecting ??= this.options.connect());
        this.connection = connection;
        if (this.unwanted.size || unflagged.length) await this.takeFlags(connection, unflagged);
        else if (checking.length) await this.check(connection, checking);
        else await this.sleep(connection, armed);
        this.reconnectDelayMs = 100;
      } catch (error) {
        // Interrupted by a release, or by a change here: look again.
        if (interrupted(error)) continue;
        this.dropped();
        this.running = false;
        return;
      }
    }
  }

  /** Takes the flags of names newly waited for (never twice: named locks nest) and lets go of those no longer waited for. */
  private async takeFlags(connection: Connection, names: string[]): Promise<void> {
    const letGo = [...this.unwanted];
    const [rows] = await this.query(connection, this.options.statements.flags(names.length, letGo.length), [...names.flatMap((name) => [name, name]), ...letGo]);
    for (const name of letGo) this.unwanted.delete(name);
    names.forEach((name, i) => {
      const watch = this.watches.get(name);
      if (watch?.state !== 'unflagged') return;
      // 1 (a number, or as a BIGINT a string): taken. Else another app waits for the lock and holds the flag: this one polls.
      watch.state = Number(rows[0][`t${i}`]) === 1 ? 'checking' : 'elsewhere';
      if (watch.state === 'elsewhere') this.settle(watch, Infinity);
    });
  }

  /**
   * Reads which of `names` are held, waiting for any release under way (a locking read): a release
   * that commits after it reads the flag, and interrupts the sleep that follows.
   */
  private async check(connection: Connection, names: string[]): Promise<void> {
    const [rows] = await this.query(connection, this.options.statements.check(names.length), names);
    names.forEach((name, i) => {
      const watch = this.watches.get(name);
      if (watch?.state !== 'checking') return;
      const secondsLeft: string | number | null = rows[0][`s${i}`];
      if (secondsLeft === null) {
        // Its waiters are woken; the next sleep of one still waiting checks the lock again.
        watch.state = 'fired';
        this.settle(watch, 0);
        this.options.onRelease(name);
      } else {
        watch.state = 'armed';
        this.settle(watch, untilLeaseEnds(secondsLeft === 'never' ? null : Number(secondsLeft)));
      }
    });
  }

  /**
   * Sleeps until a release interrupts it, unless one of `names` is free already (a release that
   * committed before the statement, whose interruption may have come between two statements and
   * been lost). Then each of them is checked again.
   */
  private async sleep(connection: Connection, names: string[]): Promise<void> {
    const sleep = (this.sleeping = ++this.sleeps);
    try {
      await this.query(connection, this.options.statements.sleep(names.length, SLEEP_SECONDS), names, SLEEP_SECONDS);
    } catch (error) {
      // Interrupted by another app while watching one lock: its release. The waiters try at once, without waiting for the check.
      if (interrupted(error) && names.length === 1 && this.interrupting !== sleep) this.options.onRelease(names[0]);
      throw error;
    } finally {
      this.sleeping = undefined;
      for (const name of names) {
        const watch = this.watches.get(name);
        if (watch?.state === 'armed') watch.state = 'checking';
      }
    }
  }

  /** A statement on the watching connection, which is closed if it takes longer than the operation timeout (plus `sleepSeconds`). */
  private async query(connection: Connection, sql: string, values: unknown[], sleepSeconds = 0): Promise<[RowDataPacket[], unknown]> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        connection.destroy();
        reject(new Error(`The database did not answer within ${this.options.operationTimeout} seconds (the operationTimeout option).`));
      }, (sleepSeconds + this.options.operationTimeout) * 1000);
    });
    try {
      return await Promise.race([connection.query<RowDataPacket[]>(sql, values), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private settle(watch: Watch, sleepMs: number): void {
    for (const sleep of watch.pending.splice(0)) sleep.resolve(sleepMs);
  }

  /** The connection failed: its flags went with it, so every wait polls, and looks again once it is back. */
  private dropped(): void {
    this.connection?.destroy();
    this.connection = undefined;
    this.connecting = undefined;
    this.unwanted.clear();
    for (const watch of this.watches.values()) {
      watch.state = 'unflagged';
      for (const sleep of watch.pending.splice(0)) sleep.reject(new Error('The watching connection failed.'));
    }
    this.options.onGap();
    if (this.closed || this.watches.size === 0) return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.kick();
    }, this.reconnectDelayMs);
    this.reconnectDelayMs = Math.min(MAX_RECONNECT_DELAY_MS, this.reconnectDelayMs * 2);
  }

  private closeWhenIdle(): void {
    clearTimeout(this.idleTimer);
    if (this.closed) return;
    this.idleTimer = setTimeout(() => {
      if (this.watches.size > 0 || this.running) return;
      const connection = this.connection;
      this.connection = undefined;
      this.connecting = undefined;
      connection?.end().catch(() => connection.destroy());
    }, IDLE_CONNECTION_MS);
  }

  /**
   * Ends the watching connection, interrupting its sleep first: the server lets go of a session's named
   * locks once its statement ends, and notices a closed socket during a sleep only every few seconds.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.idleTimer);
    for (const watch of this.watches.values()) this.settle(watch, Infinity);
    const connection = this.connection ?? (await this.connecting?.catch(() => undefined));
    this.connection = undefined;
    if (connection && this.sleeping !== undefined && connection.threadId) {
      await this.interruptSleep(this.sleeping, connection.threadId, performance.now() + this.options.operationTimeout * 1000);
    }
    this.closing.abort();
    if (!connection) return;
    if (this.sleeping !== undefined) connection.destroy();
    else await connection.end().catch(() => connection.destroy());
  }
}
