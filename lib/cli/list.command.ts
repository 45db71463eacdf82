import type { Command } from './command';
import { ExitCode } from './command';
import { alignColumns, formatLockedUntil, writeLine } from './output';

export const listCommand: Command = {
  name: 'list',
  synopsis: '[--json]',
  summary: 'Show the live locks',
  description: [
    'Shows every live lock, by name: who holds it (locked by, process id), when it expires, and its',
    'fencing token. Expired rows, which count as free, are not shown. Owner tokens are never shown.',
  ].join('\n'),
  options: [
    {
      name: 'json',
      type: 'boolean',
      description: 'Print a JSON array of objects (name, lockedBy, lockProcess, lockedUntil, createdAt, updatedAt, fencingToken, expiresSeconds) instead of a table',
    },
  ],
  takesNames: false,
  prepare: (values) => async ({ locks, output }) => {
    const held = await locks.listLocks();
    if (values.json) {
      // A lock's JSON form leaves its owner token out.
      writeLine(output, JSON.stringify(held, null, 2));
      return ExitCode.success;
    }
    if (held.length === 0) {
      writeLine(output, 'No locks are held.');
      return ExitCode.success;
    }
    const rows = held.map((lock) => [
      lock.name,
      lock.lockedBy ?? '-',
      lock.lockProcess === null ? '-' : String(lock.lockProcess),
      formatLockedUntil(lock),
      String(lock.fencingToken),
    ]);
    for (const line of alignColumns([['NAME', 'LOCKED BY', 'PROCESS', 'LOCKED UNTIL', 'FENCING TOKEN'], ...rows])) writeLine(output, line);
    return ExitCode.success;
  },
};
