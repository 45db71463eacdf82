/**
 * One instance of a clustered app, as its own OS process: an `@Interval` job guarded by `@LeaderOnly`
 * that writes its fencing token to a fenced store shared by the instances. It reports, as JSON lines,
 * `ready`, each `elected` and `demoted` event, each tick it ran (`tick`) and each it skipped, and each
 * write the store refused (`fenced`), with the time (epoch milliseconds, fractions kept) at which it
 * happened. Commands on its standard input: `{ "do": "resign", "rejoinAfterMs": N }` (it campaigns again N ms later),
 * `{ "do": "freeze", "ms": N }` (its event loop stalls N ms), `{ "do": "exit" }` (closes the app).
 */
import { Injectable } from '@nestjs/common';
import { Interval, ScheduleModule } from '@nestjs/schedule';
import { subscribe } from 'node:diagnostics_channel';
import { createInterface } from 'node:readline';
import { LeaderOnly, Leadership, LOCKMGR_CHANNELS, LockDemotedMessage, LockElectedMessage, LockService } from '../../lib';
import { FencedStore } from '../support/fenced-store';
import { createWorkerApp, WorkerDatabase } from '../support/worker-app';

export interface LeaderWorkerSettings extends WorkerDatabase {
  instance: string;
  expires: number;
  /** Where the fenced store keeps its files. */
  directory: string;
}

/** Wall-clock time with the precision of the monotonic clock: the processes of the test share one host. */
const now = () => performance.timeOrigin + performance.now();
const report = (event: object) => console.log(JSON.stringify({ ...event, pid: process.pid, at: now() }));

async function main(settings: LeaderWorkerSettings): Promise<void> {
  const store = new FencedStore(settings.directory, 'leader');
  const lead = { expires: settings.expires };
  let leadership: Leadership | undefined;

  @Injectable()
  class LeaderJob {
    @Interval(50)
    @LeaderOnly('leader', lead)
    tick(): void {
      const token = leadership!.fencingToken;
      if (token === null) return report({ event: 'demoted during the call' });
      report({ event: store.write(token, process.pid) ? 'tick' : 'fenced', token });
    }
  }

  subscribe(LOCKMGR_CHANNELS.elected, (message) => report({ event: 'elected', token: (message as LockElectedMessage).fencingToken }));
  subscribe(LOCKMGR_CHANNELS.demoted, (message) => {
    const { fencingToken, reason } = message as LockDemotedMessage;
    report({ event: 'demoted', token: fencingToken, reason });
  });
  subscribe(LOCKMGR_CHANNELS.skipped, () => report({ event: 'skipped' }));

  const app = await createWorkerApp(settings, {
    lockOptions: { lockedBy: settings.instance },
    metadata: { imports: [ScheduleModule.forRoot()], providers: [LeaderJob] },
  });
  app.enableShutdownHooks();
  const locks = app.get(LockService);
  leadership = locks.lead('leader', lead);
  report({ event: 'ready' });

  createInterface({ input: process.stdin }).on('line', async (line) => {
    const command = JSON.parse(line) as { do: 'resign' | 'freeze' | 'exit'; ms?: number; rejoinAfterMs?: number };
    if (command.do === 'resign') {
      await leadership!.resign();
      setTimeout(() => (leadership = locks.lead('leader', lead)), command.rejoinAfterMs ?? 0);
    } else if (command.do === 'freeze') {
      // Said by the worker itself: a tick it ran before reading the command was still in its term.
      report({ event: 'freezing' });
      const until = performance.now() + command.ms!;
      while (performance.now() < until) {
        // The event loop stalls: no timer, no renewal, no database answer runs meanwhile.
      }
      report({ event: 'woke', isLeader: leadership!.isLeader });
    } else {
      await app.close();
      process.exit(0);
    }
  });
}

main(JSON.parse(process.argv[2])).catch((error) => {
  console.error(error);
  process.exit(1);
});
