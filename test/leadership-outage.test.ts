import { LockDemotedMessage, LockLostError, LOCKMGR_CHANNELS } from '../lib';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { useProxiedLockApps } from './support/proxied-lock-apps';
import { sleep } from './support/lock-app';
import { PROXIED_SERVERS, TcpProxy } from './support/tcp-proxy';
import { describeOnDatabase, uniqueName } from './support/test-databases';
import type { LockApp } from './support/lock-app';

for (const server of PROXIED_SERVERS) {
  describeOnDatabase(server.database, 'A leader cut off from the database', () => {
    const isolation = uniqueName('leader_outage');
    let proxy: TcpProxy;
    let direct: LockApp;
    let proxied: LockApp;
    useProxiedLockApps(
      server,
      isolation,
      (apps) => ({ proxy, direct, proxied } = apps),
      // Calls to a database that does not answer give up after a second.
      { operationTimeout: 1 },
    );

    it('learns it before its lease ends, campaigns on through the outage, and leads again afterwards', async () => {
      const demoted: LockDemotedMessage[] = [];
      const onDemoted = (message: unknown) => {
        if ((message as LockDemotedMessage).table === isolation) demoted.push(message as LockDemotedMessage);
      };
      subscribe(LOCKMGR_CHANNELS.demoted, onDemoted);
      try {
        const cutOff = proxied.locks.lead('outage', { expires: 3 });
        await cutOff.elected();
        const firstToken = cutOff.fencingToken!;
        const other = direct.locks.lead('outage', { expires: 3 });

        proxy.down();
        const term = cutOff.signal;
        const lostAt = await new Promise<number>((resolve) => term.addEventListener('abort', () => resolve(performance.now())));
        expect(term.reason).toBeInstanceOf(LockLostError);
        expect(cutOff.isLeader).toBe(false);
        await other.elected();
        const otherElectedAt = performance.now();
        const otherToken = other.fencingToken!;
        expect(otherToken).toBeGreaterThan(firstToken);
        // The old leader stopped before the new one could start.
        expect(lostAt).toBeLessThan(otherElectedAt);
        expect(demoted).toEqual([expect.objectContaining({ name: 'outage', fencingToken: firstToken, reason: 'lost' })]);

        // The outage outlasts several retries of the campaign; it goes on, and wins once the leader resigns.
        await sleep(1500);
        proxy.up();
        await other.resign();
        await cutOff.elected({ signal: AbortSignal.timeout(10_000) });
        expect(cutOff.fencingToken!).toBeGreaterThan(otherToken);
        await cutOff.resign();
      } finally {
        unsubscribe(LOCKMGR_CHANNELS.demoted, onDemoted);
      }
    });
  });
}
