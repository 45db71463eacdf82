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
 * Prints the lock events of this instance as plain lines. By default only what tells the story of the
 * cluster without burying its ticks: runs skipped because another instance took the tick or held the
 * lock, and locks lost. With `all`, every acquisition, renewal and release too.
 */
export function logLockEvents(all: boolean): void {
  subscribe(LOCKMGR_CHANNELS.elected, (message) => {
    const { name, fencingToken, waited } = message as LockElectedMessage;
    console.log(`elected leader of "${name}" (term token ${fencingToken}) after campaigning ${seconds(waited)}`);
  });
  subscribe(LOCKMGR_CHANNELS.demoted, (message) => {
    const { name, fencingToken, reason, held } = message as LockDemotedMessage;
    console.log(`no longer leader of "${name}" (${reason}; term token ${fencingToken}, led ${seconds(held)})`);
  });
  subscribe(LOCKMGR_CHANNELS.skipped, (message) => {
    const { method, error } = message as LockSkippedMessage;
    // The indexer's followers skip the leader's work at every tick: that is the point, not news.
    if (method === 'IndexerJob.index') return;
    console.log(`skipped ${method}: ${error.message}`);
  });
  subscribe(LOCKMGR_CHANNELS.lost, (message) => {
    const { error, fencingToken, held } = message as LockLostMessage;
    console.log(`lost: ${error.message} (fencing token ${fencingToken}, held ${seconds(held)})`);
  });
  if (!all) return;
  subscribe(LOCKMGR_CHANNELS.acquired, (message) => {
    const { name, fencingToken, waited, lockedUntil } = message as LockAcquiredMessage;
    console.log(`acquired lock "${name}" (fencing token ${fencingToken}) after waiting ${seconds(waited)}, expires ${time(lockedUntil)}`);
  });
  subscribe(LOCKMGR_CHANNELS.renewed, (message) => {
    const { name, fencingToken, lockedUntil } = message as LockRenewedMessage;
    console.log(`renewed lock "${name}" (fencing token ${fencingToken}), expires ${time(lockedUntil)}`);
  });
  subscribe(LOCKMGR_CHANNELS.released, (message) => {
    const { name, fencingToken, held, forced, keptUntil } = message as LockReleasedMessage;
    const how = forced ? 'force-released' : 'released';
    const token = fencingToken === null ? '' : ` (fencing token ${fencingToken})`;
    const kept = keptUntil ? `, kept by minHold until ${time(keptUntil)}` : '';
    console.log(`${how} lock "${name}"${token} after holding it ${seconds(held)}${kept}`);
  });
}
