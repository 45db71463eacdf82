import { subscribe } from 'node:diagnostics_channel';
import {
  LOCKMGR_CHANNELS,
  LockAcquiredMessage,
  LockDemotedMessage,
  LockElectedMessage,
  LockLostMessage,
  LockReleasedMessage,
  LockRenewedMessage,
  LockSkippedMessage,
} from '../lib';

const time = (date: Date | null) => (date ? date.toTimeString().slice(0, 8) : 'never');
const seconds = (value: number | null) => (value === null ? '?' : `${value.toFixed(3)} s`);

/**
 * Subscribes `print` to `channel` so that it never throws: an error a subscriber throws would end the
 * instance (Node rethrows it as an uncaught exception) and leave its locks taken until their leases end.
 */
function printOn<Message>(channel: string, print: (message: Message) => void): void {
  subscribe(channel, (message) => {
    try {
      print(message as Message);
    } catch (error) {
      console.error(`printing a lock event of ${channel} failed: ${error}`);
    }
  });
}

/**
 * Prints the lock events of this instance as plain lines. By default only what tells the story of the
 * cluster without burying its ticks: runs skipped because another instance took the tick or held the
 * lock, and locks lost. With `all`, every acquisition, renewal and release too.
 */
export function logLockEvents(all: boolean): void {
  printOn<LockElectedMessage>(LOCKMGR_CHANNELS.elected, ({ name, fencingToken, waited }) => {
    console.log(`elected leader of "${name}" (term token ${fencingToken}) after campaigning ${seconds(waited)}`);
  });
  printOn<LockDemotedMessage>(LOCKMGR_CHANNELS.demoted, ({ name, fencingToken, reason, held }) => {
    console.log(`no longer leader of "${name}" (${reason}; term token ${fencingToken}, led ${seconds(held)})`);
  });
  printOn<LockSkippedMessage>(LOCKMGR_CHANNELS.skipped, ({ method, error }) => {
    // The indexer's followers skip the leader's work at every tick: that is the point, not news.
    if (method === 'IndexerJob.index') return;
    console.log(`skipped ${method}: ${error.message}`);
  });
  printOn<LockLostMessage>(LOCKMGR_CHANNELS.lost, ({ error, fencingToken, held }) => {
    console.log(`lost: ${error.message} (fencing token ${fencingToken}, held ${seconds(held)})`);
  });
  if (!all) return;
  printOn<LockAcquiredMessage>(LOCKMGR_CHANNELS.acquired, ({ name, fencingToken, waited, lockedUntil }) => {
    console.log(`acquired lock "${name}" (fencing token ${fencingToken}) after waiting ${seconds(waited)}, expires ${time(lockedUntil)}`);
  });
  printOn<LockRenewedMessage>(LOCKMGR_CHANNELS.renewed, ({ name, fencingToken, lockedUntil }) => {
    console.log(`renewed lock "${name}" (fencing token ${fencingToken}), expires ${time(lockedUntil)}`);
  });
  printOn<LockReleasedMessage>(LOCKMGR_CHANNELS.released, ({ name, fencingToken, held, forced, keptUntil }) => {
    const how = forced ? 'force-released' : 'released';
    const token = fencingToken === null ? '' : ` (fencing token ${fencingToken})`;
    const kept = keptUntil ? `, kept by minHold until ${time(keptUntil)}` : '';
    console.log(`${how} lock "${name}"${token} after holding it ${seconds(held)}${kept}`);
  });
}
