import { randomUUID } from 'node:crypto';
import type { Client, ClientConfig } from 'pg';
import { IDLE_CONNECTION_MS } from './postgres-pool';

/** Reconnection backs off up to this, so a database that stays down is not hammered. */
const MAX_RECONNECT_DELAY_MS = 5000;

/** How long the first connection waits for the notification it sent itself (PostgreSQL delivers it in milliseconds). */
const PROBE_TIMEOUT_MS = 2000;

/** Notifications sent on the channel, as the listener checks that they reach it. */
export type SendNotification = (channel: string, payload: string) => Promise<unknown>;

/** The server session that LISTENs: a release hands a lock over only to a waiter whose app still listens in it. */
export interface ListenerSession {
  pid: number;
  /** When the session started, as the server shows it: with the pid, it names the session, since pids are reused. */
  started: string;
}

/** Thrown by `listening()` once notifications were found not to arrive: waiters poll. */
class NotificationsUnavailable extends Error {}

/**
 * The one connection per app that LISTENs for releases on PostgreSQL, shared by every wait: on the
 * table's channel, which every app hears, and on a channel of this app's own, on which a release tells
 * one of its waiters that its turn has come. It is
 * opened by the first wait, and reopened by itself if the connection drops while waits use it; after a
 * reconnection every waiter is woken, since releases announced during the gap were lost. Once no wait
 * (nor, while it is open, an acquisition that would wait) has used it for `IDLE_CONNECTION_MS`, it
 * closes, and the next wait opens it again.
 */
export class PostgresListener {
  private client?: Client;
  private connecting?: Promise<void>;
  private reconnectDelayMs = 100;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;
  /** Waits under way that use the listener: it stays open while there is any. */
  private users = 0;
  private idleTimer?: NodeJS.Timeout;
  /** Whether a notification sent through the lock pool reached this connection; checked once. */
  private delivers?: boolean;
  /** Ends the check of the first connection early, at shutdown. */
  private stopCheck?: () => void;
  /** The session of the open connection, once notifications are known to reach it. */
  private listeningSession?: ListenerSession;

  constructor(
    private readonly createClient: (config: ClientConfig) => Client,
    private readonly config: ClientConfig,
    private readonly channel: string,
    /** Notices addressed to this app alone (see `addressedChannel`). */
    private readonly addressedChannel: string,
    private readonly onRelease: (payload: string) => void,
    private readonly onAddressed: (payload: string) => void,
    private readonly onGap: () => void,
    /** Sends the first connection's test notification, from another session than the listener's. */
    private readonly sendNotification: SendNotification,
    /** Called once if notifications do not arrive: a transaction pooler, whose sessions do not outlive a transaction. */
    private readonly onUndelivered: () => void,
  ) {}

  /** The server session listening now; undefined while the connection is not open. */
  get session(): ListenerSession | undefined {
    return this.client ? this.listeningSession : undefined;
  }

  /** False once notifications were found not to arrive; waiters then poll. */
  get available(): boolean {
    return this.delivers !== false;
  }

  /** Keeps the listener open for a wait, until the function returned is called. */
  use(): () => void {
    this.users++;
    clearTimeout(this.idleTimer);
    let used = true;
    return () => {
      if (!used) return;
      used = false;
      this.users--;
      this.closeWhenIdle();
    };
  }

  /** Resolves once this app is listening; shared by concurrent callers. */
  listening(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('The lock module is shut down.'));
    if (this.delivers === false) return Promise.reject(new NotificationsUnavailable('Notifications do not reach this app.'));
    return (this.connecting ??= this.connect().catch((error) => {
      this.connecting = undefined;
      throw error;
    }));
  }

  private async connect(): Promise<void> {
    const client = this.createClient({ ...this.config, keepAlive: true });
    let probe: { payload: string; arrived: () => void } | undefined;
    client.on('notification', ({ channel, payload }) => {
      if (payload === undefined) return;
      if (channel === this.addressedChannel) this.onAddressed(payload);
      else if (channel !== this.channel) return;
      else if (payload === probe?.payload) probe.arrived();
      else this.onRelease(payload);
    });
    // An error is followed by 'end'; the reconnection is driven from there.
    client.on('error', () => undefined);
    client.on('end', () => this.dropped(client));
    await client.connect();
    let session: ListenerSession;
    try {
      // Read first: a release checks that LISTEN was the session's last statement.
      const { rows } = await client.query<{ pid: number; started: string }>(
        'SELECT pid, backend_start::text AS started FROM pg_stat_get_activity(pg_backend_pid())',
      );
      session = rows[0];
      await client.query(`LISTEN "${this.addressedChannel}"`);
      await client.query(`LISTEN "${this.channel}"`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Error('The lock module is shut down.');
    }
    if (this.delivers === undefined) {
      // Sent from another session: behind a transaction pooler the listener's own NOTIFY would likely
      // run in the very server session that LISTENed, and come back though no other would.
      const payload = `lockmgr-listener-check:${randomUUID()}`;
      let timeout: NodeJS.Timeout | undefined;
      const arrived = new Promise<boolean | undefined>((resolve) => {
        probe = { payload, arrived: () => resolve(true) };
        this.stopCheck = () => resolve(undefined);
        timeout = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS);
      });
      try {
        await this.sendNotification(this.channel, payload);
        this.delivers = await arrived;
      } catch (error) {
        await client.end().catch(() => undefined);
        throw error;
      } finally {
        // However the check ends, its timer must not outlive it (nor keep a closing app waiting).
        clearTimeout(timeout);
        this.stopCheck = undefined;
      }
      if (this.delivers === undefined) {
        await client.end().catch(() => undefined);
        throw new Error('The lock module is shut down.');
      }
      if (!this.delivers) {
        // The server session that LISTENed goes back to the pooler's pool: stop it collecting notifications.
        await client.query('UNLISTEN *').catch(() => undefined);
        await client.end().catch(() => undefined);
        this.onUndelivered();
        throw new NotificationsUnavailable('Notifications do not reach this app.');
      }
    }
    this.client = client;
    this.listeningSession = session;
    this.reconnectDelayMs = 100;
    // Opened for a wait that has ended meanwhile, or at start-up behind a pooler, for the check.
    this.closeWhenIdle();
  }

  private closeWhenIdle(): void {
    if (this.users > 0 || this.closed) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      const client = this.client;
      // Still connecting: the connection, once open, sets the timer again.
      if (this.users > 0 || !client) return;
      this.client = undefined;
      this.connecting = undefined;
      client.end().catch(() => undefined);
    }, IDLE_CONNECTION_MS);
  }

  private dropped(client: Client): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    this.connecting = undefined;
    // With no wait to serve, the next wait connects.
    if (this.users === 0) return;
    const reconnect = () => {
      this.reconnectTimer = undefined;
      if (this.closed || this.users === 0) return;
      this.listening().then(this.onGap, () => {
        this.reconnectDelayMs = Math.min(MAX_RECONNECT_DELAY_MS, this.reconnectDelayMs * 2);
        this.reconnectTimer = setTimeout(reconnect, this.reconnectDelayMs);
      });
    };
    this.onGap();
    reconnect();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.idleTimer);
    this.stopCheck?.();
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
