import { createInterface } from 'node:readline';
import type { Command } from './command';
import { ExitCode } from './command';
import { counted, writeLine } from './output';

export const resetCommand: Command = {
  name: 'reset',
  synopsis: '[--force]',
  summary: 'Delete every lock, after a typed confirmation',
  description: [
    'Deletes every lock in the table, whoever holds it. It first says how many locks there are and',
    'asks you to type the table name to confirm (read from standard input); any other answer, or none,',
    'aborts with exit code 1 and deletes nothing. Fencing tokens keep growing from where they were.',
  ].join('\n'),
  options: [{ name: 'force', type: 'boolean', description: 'Delete without asking for confirmation' }],
  takesNames: false,
  prepare: (values) => async ({ locks, tableName, database, input, output, errors }) => {
    if (!values.force) {
      const held = await locks.listLocks();
      if (held.length === 0) {
        writeLine(output, 'No locks are held: nothing to delete.');
        return ExitCode.success;
      }
      // On standard error, so that the prompt shows even when the output goes to a file.
      errors.write(
        `This deletes ${counted(held.length, 'lock')} in the table "${tableName}" of the ${database}; their holders lose them.\n` +
          `Type the table name (${tableName}) to confirm: `,
      );
      const answer = await readAnswer(input);
      // A terminal echoed the answer and its line break; piped input did not.
      if (!(input as { isTTY?: boolean }).isTTY) writeLine(errors);
      if (answer?.trim() !== tableName) {
        writeLine(errors, answer === null ? 'Aborted (no answer): nothing was deleted. --force skips the confirmation.' : 'Aborted: nothing was deleted.');
        return ExitCode.failure;
      }
    }
    // Released by name, as the service's force-release does, then the expired rows are cleaned up.
    let released = 0;
    for (const lock of await locks.listLocks()) if (await locks.unlock(lock.name)) released++;
    const expired = await locks.cleanLocks();
    writeLine(output, `Deleted ${counted(released, 'lock')}${expired > 0 ? ` and ${counted(expired, 'expired row')}` : ''}.`);
    return ExitCode.success;
  },
};

/** One line typed by the user, or null when the input ends first. */
function readAnswer(input: NodeJS.ReadableStream): Promise<string | null> {
  return new Promise((resolve) => {
    const reader = createInterface({ input });
    reader.once('line', (line) => {
      resolve(line);
      reader.close();
    });
    reader.once('close', () => resolve(null));
  });
}
