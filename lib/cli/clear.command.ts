import type { Command } from './command';
import { checkNames, ExitCode } from './command';
import { printable, writeLine } from './output';

export const clearCommand: Command = {
  name: 'clear',
  synopsis: 'NAME…',
  summary: 'Force-release locks by name',
  description: [
    'Releases each named lock, whoever holds it (the holder is not asked), and says which ones were',
    'released and which ones were not locked. Either way the names are free afterwards, so it exits 0.',
  ].join('\n'),
  options: [],
  takesNames: true,
  prepare: (_values, names) => {
    const checked = checkNames(names);
    return async ({ locks, output }) => {
      // Each line as soon as it is known: if the database fails half-way, what was released is on screen.
      for (const name of checked) {
        const outcome = (await locks.unlock(name)) ? 'released' : 'not locked';
        writeLine(output, `${outcome.padEnd('not locked'.length)}  ${printable(name)}`);
      }
      return ExitCode.success;
    };
  },
};
