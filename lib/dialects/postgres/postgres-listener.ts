import type { Client, ClientConfig } from 'pg';

/** Reconnection backs off up to this, so a database that stays down is not hammered. */
const MAX_RECONNECT_DELAY_MS = 5000;

/**
 * The one connection per app that LISTENs for releases on PostgreSQL, shared by every wait. It is
 * opened by the first wait, and reopened by itself if the connection drops; after a reconnection
 * every waiter is woken, since releases announced during the gap were lost.
 */
export class PostgresListener {
  private client?: Client;
  private connecting?: Promise<void>;
  private reconnectDelayMs = 100;
  private reconnectTimer?: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly createClient: (config: ClientConfig) => Client,
    private readonly config: ClientConfig,
    private readonly channel: string,
    private readonly onRelease: (name: string) => void,
    private readonly onGap: () => void,
  ) {}

  /** Resolves once this app is listening; shared by concurrent callers. */
  listening(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('The lock module is shut down.'));
    return (this.connecting ??= this.connect().catch((error) => {
      this.connecting = undefined;
      throw error;
    }));
  }

  private async connect(): Promise<void> {
    const client = this.createClient({ ...this.config, keepAlive: true });
    client.on('notification', (message) => {
      if (message.channel === this.channel && message.payload !== undefined) this.onRelease(message.payload);
    });
    // An error is followed by 'end'; the reconnection is driven from there.
    client.on('error', () => undefined);
    client.on('end', () => this.dropped(client));
    await client.connect();
    try {
      await client.query(`LISTEN "${this.channel}"`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      throw new Error('The lock module is shut down.');
    }
    this.client = client;
    this.reconnectDelayMs = 100;
  }

  private dropped(client: Client): void {
    if (this.client !== client || this.closed) return;
    this.client = undefined;
    this.connecting = undefined;
    const reconnect = () => {
      this.reconnectTimer = undefined;
      if (this.closed) return;
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
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
