import { createConnection, createServer, Server, Socket } from 'node:net';
import { MYSQL_URL, POSTGRES_URL, TestDatabase, testDatabase } from './test-databases';

/**
 * A TCP relay between the app and its database, to make the network fail on cue: `down()` drops
 * every connection and refuses new ones (a server that died), `partition()` stops delivering bytes
 * while keeping connections open (a network that silently lost packets), `refuseNew()` refuses new
 * connections only (a server out of connection slots), `up()` heals them all. `moveTo()` makes it
 * lead to another server, as a service address does after a failover.
 */
export class TcpProxy {
  private mode: 'up' | 'down' | 'partition' | 'refusing' = 'up';
  private readonly pairs = new Set<{ client: Socket; server: Socket; held: Array<() => void> }>();

  private constructor(
    private readonly server: Server,
    private target: { host: string; port: number },
  ) {}

  /** A relay to the target, listening on a free port of `listenHost` (`::1` to reach an IPv4-only server over IPv6). */
  static async start(targetHost: string, targetPort: number, listenHost = '127.0.0.1'): Promise<TcpProxy> {
    const server = createServer();
    const proxy = new TcpProxy(server, { host: targetHost, port: targetPort });
    server.on('connection', (client) => proxy.relay(client));
    await new Promise<void>((resolve) => server.listen(0, listenHost, resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as { port: number }).port;
  }

  private relay(client: Socket): void {
    if (this.mode === 'down' || this.mode === 'refusing') return void client.destroy();
    const server = createConnection(this.target.port, this.target.host);
    const pair = { client, server, held: [] as Array<() => void> };
    this.pairs.add(pair);
    const forward = (from: Socket, to: Socket) =>
      from.on('data', (chunk) => {
        const deliver = () => to.write(chunk);
        if (this.mode !== 'partition') deliver();
        else pair.held.push(deliver);
      });
    forward(client, server);
    forward(server, client);
    const close = () => {
      this.pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on('close', close).on('error', close);
    server.on('close', close).on('error', close);
  }

  down(): void {
    this.mode = 'down';
    this.dropConnections();
  }

  private dropConnections(): void {
    for (const { client, server } of this.pairs) {
      client.destroy();
      server.destroy();
    }
    this.pairs.clear();
  }

  /** New connections lead to `targetPort`; those to the server it led to are cut, as moving an address cuts them. */
  moveTo(targetPort: number, targetHost = '127.0.0.1'): void {
    this.target = { host: targetHost, port: targetPort };
    this.dropConnections();
  }

  partition(): void {
    this.mode = 'partition';
  }

  refuseNew(): void {
    this.mode = 'refusing';
  }

  up(): void {
    this.mode = 'up';
    for (const pair of this.pairs) for (const deliver of pair.held.splice(0)) deliver();
  }

  async close(): Promise<void> {
    this.down();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

/** A database server that the outage suites reach through a proxy. */
export interface ProxiedServer {
  database: TestDatabase;
  url: string;
  defaultPort: number;
}

export const PROXIED_SERVERS: ProxiedServer[] = [
  { database: testDatabase('postgres'), url: POSTGRES_URL, defaultPort: 5432 },
  { database: testDatabase('mysql'), url: MYSQL_URL, defaultPort: 3306 },
];

/** Starts a proxy in front of `server`, and says how an app reaches the database through it. */
export async function proxyServer(server: ProxiedServer, isolation: string): Promise<{ proxy: TcpProxy; throughProxy: TestDatabase }> {
  const target = new URL(server.url);
  const proxy = await TcpProxy.start(target.hostname, Number(target.port || server.defaultPort));
  const url = new URL(server.url);
  url.port = String(proxy.port);
  const { database } = server;
  return { proxy, throughProxy: { ...database, dataSourceOptions: () => ({ ...database.dataSourceOptions(isolation), url: url.toString() }) } };
}

/** A local port nothing listens on: a server that is down, or the port for a server a test starts. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
