import { LockFailError } from '../errors';
import type { SetLockOptions } from '../lock-options';
import { checkExpires, checkProcessId, checkText } from '../validation';
import type { Command, OptionValues } from './command';
import { checkNames, ExitCode, parseInteger, parseNumber, UsageError } from './command';
import { alignColumns, formatLockedUntil, printable, writeLine, yesNo } from './output';

const STATUS_WORDS = { create: 'created', extend: 'renewed', skip: 'skipped' } as const;

export const setCommand: Command = {
  name: 'set',
  synopsis: 'NAME… [--timeout SECONDS | --no-timeout] [--no-renew | --only-renew] [--fail] [--locked-by TEXT] [--pid N]',
  summary: "Create or renew locks (django-lockmgr's set_lock)",
  description: [
    'Locks each free name and renews each locked one, in one transaction, as django-lockmgr\'s set_lock',
    'command does. Renewing never shortens a lock. It prints what it did to each name (was locked, now',
    'locked, status: created, renewed or skipped) and the counts. The locks stay until they expire or',
    'are cleared: nothing renews them after the command exits.',
  ].join('\n'),
  options: [
    { name: 'timeout', type: 'string', valueName: 'SECONDS', description: 'Lease of the locks created and renewed (default 600; 0: never expires)' },
    { name: 'no-timeout', type: 'boolean', description: 'The locks never expire' },
    { name: 'no-renew', type: 'boolean', description: 'Create the free names only; leave locked ones as they are' },
    { name: 'only-renew', type: 'boolean', description: 'Renew the locked names only; create nothing' },
    { name: 'fail', type: 'boolean', description: 'All or nothing: if a name is already locked, exit 2 and keep none of the locks created' },
    { name: 'locked-by', type: 'string', valueName: 'TEXT', description: "Recorded as the holder (default: this host's name)" },
    { name: 'pid', type: 'string', valueName: 'N', description: 'Recorded as the holder\'s process id (default: none, as this command exits at once)' },
  ],
  takesNames: true,
  prepare: (values, names) => {
    const checked = checkNames(names);
    if (values['no-renew'] && values['only-renew']) {
      throw new UsageError('--no-renew and --only-renew exclude each other: together they would neither create nor renew.');
    }
    const options: SetLockOptions = {
      timeout: checkTimeout(values),
      fail: values.fail === true,
      renew: values['no-renew'] !== true,
      create: values['only-renew'] !== true,
      lockedBy: checkText(values['locked-by'], '--locked-by'),
      lockProcess: values.pid === undefined ? null : checkProcessId(parseInteger(values.pid as string, '--pid'), '--pid'),
    };
    return async ({ locks, output, errors }) => {
      let result;
      try {
        result = await locks.setLock(checked, options);
      } catch (error) {
        if (!(error instanceof LockFailError)) throw error;
        const holder = error.lock.lockedBy === null ? '' : `locked by ${printable(error.lock.lockedBy)}, `;
        writeLine(
          errors,
          `Aborted (--fail): lock "${printable(error.lockName)}" already exists (${holder}expires: ${formatLockedUntil(error.lock)}). No lock was created.`,
        );
        return ExitCode.setAborted;
      }
      const held = new Map(result.locks.map((lock) => [lock.name, lock]));
      const rows = result.statuses.map(([name, status]) => {
        const lock = held.get(name);
        return [name, yesNo(status.wasLocked), yesNo(status.locked), STATUS_WORDS[status.status], lock ? formatLockedUntil(lock) : '-'];
      });
      for (const line of alignColumns([['NAME', 'WAS LOCKED', 'NOW LOCKED', 'STATUS', 'LOCKED UNTIL'], ...rows])) writeLine(output, line);
      const { created, renewed, skipCreate, skipRenew } = result.counts;
      writeLine(output);
      writeLine(output, `created: ${created}, renewed: ${renewed}, skipped (free, not created): ${skipCreate}, skipped (locked, not renewed): ${skipRenew}`);
      return ExitCode.success;
    };
  },
};

/** The lease: undefined for the service's default, null for never. */
function checkTimeout(values: OptionValues): number | null | undefined {
  if (values['no-timeout']) {
    if (values.timeout !== undefined) throw new UsageError('--timeout and --no-timeout exclude each other.');
    return null;
  }
  return values.timeout === undefined ? undefined : checkExpires(parseNumber(values.timeout as string, '--timeout'), '--timeout');
}
