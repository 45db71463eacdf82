import { ApolloDriver, ApolloDriverConfig } from '@nestjs/apollo';
import { Controller, INestApplication, INestMicroservice, UseFilters } from '@nestjs/common';
import { Args, GraphQLModule, Query, Resolver } from '@nestjs/graphql';
import { ClientProxy, ClientProxyFactory, EventPattern, MessagePattern, Payload, Transport } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { MessageBody, SubscribeMessage, WebSocketGateway, WsResponse } from '@nestjs/websockets';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { AddressInfo, Server } from 'node:net';
import { firstValueFrom, interval, map, Observable, Subject, take, toArray } from 'rxjs';
import { io, Socket } from 'socket.io-client';
import { LockedErrorFilter, LOCKMGR_CHANNELS, LockService, WithLock } from '../lib';
import { LockMgrTestingModule } from '../lib/testing';
import { deferred, until } from './support/lock-app';

const busy = (lock: string) => ({ error: 'Locked', message: `Lock "${lock}" is held elsewhere; try again later.`, lock });

/** A user's GraphQL resolver: one query under @WithLock, one that takes its lock by hand in a service call. */
@Resolver()
class ReportResolver {
  gate = deferred();
  constructor(private readonly locks: LockService) {}

  @Query(() => String)
  @WithLock((id: string) => `graphql:${id}`)
  async report(@Args('id') id: string): Promise<string> {
    await this.gate.promise;
    return `report ${id}`;
  }

  @Query(() => Boolean)
  async refund(@Args('id') id: string): Promise<boolean> {
    await this.locks.getLock(`refund:${id}`);
    return true;
  }
}

/** A user's microservice: a message handler that streams its answer, a handler that locks by hand, an event handler. */
@Controller()
class LedgerHandlers {
  readonly entries = new Subject<number>();
  readonly ticks: number[] = [];
  constructor(private readonly locks: LockService) {}

  @MessagePattern('entries')
  @WithLock((account: string) => `ledger:${account}`)
  listEntries(@Payload() account: string): Observable<string> {
    return this.entries.pipe(take(2), map((entry) => `${account}: ${entry}`));
  }

  @MessagePattern('refund')
  async refund(@Payload() id: string): Promise<boolean> {
    await this.locks.getLock(`refund:${id}`);
    return true;
  }

  @EventPattern('tick')
  @WithLock('ledger:tick')
  tick(@Payload() tick: number): void {
    this.ticks.push(tick);
  }
}

/**
 * A user's WebSocket gateway: a stream of prices under a lock per symbol, and orders that lock by hand.
 * Nest applies no global filter to gateways: the gateway binds LockedErrorFilter itself.
 */
@WebSocketGateway()
@UseFilters(LockedErrorFilter)
class PricesGateway {
  constructor(private readonly locks: LockService) {}

  @SubscribeMessage('buy')
  async buy(@MessageBody() symbol: string): Promise<string> {
    await this.locks.getLock(`orders:${symbol}`);
    return 'bought';
  }

  @SubscribeMessage('watch')
  @WithLock((symbol: string) => `prices:${symbol}`)
  watch(@MessageBody() symbol: string): Observable<WsResponse<string>> {
    return interval(20).pipe(map((tick) => ({ event: 'price', data: `${symbol}#${tick}` })));
  }
}

async function graphql(url: string, query: string): Promise<{ data?: unknown; errors?: unknown[] }> {
  const response = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  return (await response.json()) as { data?: unknown; errors?: unknown[] };
}

describe('locked handlers of every kind, on the in-memory store', () => {
  let app: INestApplication;
  let url: string;
  let locks: LockService;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [LockMgrTestingModule.forRoot(), GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true })],
      providers: [ReportResolver, PricesGateway],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.listen(0, '127.0.0.1');
    url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
    locks = app.get(LockService);
  });
  afterAll(() => app.close());

  describe('GraphQL resolvers', () => {
    it('answer one of two concurrent queries, and the other with an error whose extensions.code is LOCKED', async () => {
      const resolver = app.get(ReportResolver);
      const first = graphql(url, '{ report(id: "1") }');
      await until(() => locks.isLocked('graphql:1'));
      expect(await graphql(url, '{ report(id: "1") }')).toMatchObject({
        data: null,
        errors: [{ message: busy('graphql:1').message, path: ['report'], extensions: { code: 'LOCKED', lock: 'graphql:1' } }],
      });
      resolver.gate.resolve();
      expect(await first).toEqual({ data: { report: 'report 1' } });
    });

    it('report a LockedError from getLock in a resolver as LOCKED too', async () => {
      await locks.getLock('refund:2');
      expect(await graphql(url, '{ refund(id: "2") }')).toMatchObject({
        errors: [{ path: ['refund'], extensions: { code: 'LOCKED', lock: 'refund:2' } }],
      });
    });
  });

  describe('WebSocket gateways', () => {
    const clients: Socket[] = [];
    const connect = async () => {
      const client = io(url, { transports: ['websocket'] });
      clients.push(client);
      await new Promise<void>((connected) => client.once('connect', () => connected()));
      return client;
    };
    afterAll(() => clients.forEach((client) => client.disconnect()));

    it('stream to one client while the other gets a WsException, and let the lock go when the streaming client leaves', async () => {
      const [first, second] = [await connect(), await connect()];
      const prices: string[] = [];
      first.on('price', (price: string) => prices.push(price));
      first.emit('watch', 'ACME');
      await until(() => prices.length >= 2);
      expect(prices[0]).toBe('ACME#0');

      const refused = new Promise((answered) => second.once('exception', answered));
      second.emit('watch', 'ACME');
      expect(await refused).toEqual({ status: 'error', ...busy('prices:ACME') });

      first.disconnect();
      await until(async () => !(await locks.isLocked('prices:ACME')));
    });

    it('answer a LockedError from getLock in a gateway with a WsException', async () => {
      const client = await connect();
      await locks.getLock('orders:ACME');
      const refused = new Promise((answered) => client.once('exception', answered));
      client.emit('buy', 'ACME');
      expect(await refused).toEqual({ status: 'error', ...busy('orders:ACME') });
    });
  });
});

describe('locked microservice handlers over TCP, on the in-memory store', () => {
  let microservice: INestMicroservice;
  let client: ClientProxy;
  let locks: LockService;
  let handlers: LedgerHandlers;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [LockMgrTestingModule.forRoot()], controllers: [LedgerHandlers] }).compile();
    microservice = moduleRef.createNestMicroservice({ transport: Transport.TCP, options: { host: '127.0.0.1', port: 0 }, logger: false });
    await microservice.listen();
    const { port } = (microservice.unwrap<Server>().address() as AddressInfo);
    client = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    locks = microservice.get(LockService);
    handlers = microservice.get(LedgerHandlers);
  });
  afterAll(async () => {
    await client.close();
    await microservice.close();
  });

  it('stream the answer of one of two concurrent messages under the lock, and answer the other with an RpcException', async () => {
    const first = firstValueFrom(client.send('entries', 'A-1').pipe(toArray()));
    await until(() => handlers.entries.observed);
    await expect(firstValueFrom(client.send('entries', 'A-1'))).rejects.toEqual({ status: 'error', ...busy('ledger:A-1') });
    handlers.entries.next(10);
    expect(await locks.isLocked('ledger:A-1')).toBe(true);
    handlers.entries.next(20);
    expect(await first).toEqual(['A-1: 10', 'A-1: 20']);
    await until(async () => !(await locks.isLocked('ledger:A-1')));
  });

  it('answer a LockedError from getLock in a message handler as an RpcException', async () => {
    await locks.getLock('refund:3');
    await expect(firstValueFrom(client.send('refund', '3'))).rejects.toEqual({ status: 'error', ...busy('refund:3') });
  });

  it('skip an event while its lock is held elsewhere, as scheduled handlers do', async () => {
    const skipped: string[] = [];
    const onSkipped = (message: unknown) => skipped.push((message as { name: string }).name);
    subscribe(LOCKMGR_CHANNELS.skipped, onSkipped);
    try {
      const held = await locks.getLock('ledger:tick');
      client.emit('tick', 1);
      await until(() => skipped.includes('ledger:tick'));
      await locks.unlock(held);
      client.emit('tick', 2);
      await until(() => handlers.ticks.length > 0);
      expect(handlers.ticks).toEqual([2]);
    } finally {
      unsubscribe(LOCKMGR_CHANNELS.skipped, onSkipped);
    }
  });
});
