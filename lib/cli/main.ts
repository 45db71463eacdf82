#!/usr/bin/env node
/**
 * `nestjs-lockmgr`: the lock table from a shell, as django-lockmgr's management commands give it.
 * Every command runs through `LockService`, in a Nest application context like an app's.
 */
import { inspect, parseArgs } from 'node:util';
import { MAX_TABLE_NAME_LENGTH } from '../lockmgr-options';
import { checkIdentifier } from '../validation';
import { clearCommand } from './clear.command';
import { Command, CommandOption, CommandRun, ExitCode, OptionValues, UsageError } from './command';
import { DatabaseTarget, parseDatabaseUrl } from './database-url';
import { listCommand } from './list.command';
import { alignColumns, writeLine } from './output';
import { passwordsIn, redactor } from './redaction';
import { resetCommand } from './reset.command';
import { setCommand } from './set.command';
import { StandardStreams } from './standard-streams';

const PROGRAM = 'nestjs-lockmgr';
const COMMANDS: Command[] = [listCommand, clearCommand, resetCommand, setCommand];

const COMMON_OPTIONS: CommandOption[] = [
  { name: 'url', type: 'string', valueName: 'URL', description: 'The database (default: the DATABASE_URL environment variable); see below' },
  { name: 'table', type: 'string', valueName: 'NAME', description: 'The lock table (default lockmgr_lock)' },
  { name: 'schema', type: 'string', valueName: 'NAME', description: "PostgreSQL: the lock table's schema (default: the one search_path finds)" },
  { name: 'help', type: 'boolean', short: 'h', description: 'Show this help' },
];

const DATABASES = [
  'Databases (--url, or the DATABASE_URL environment variable):',
  '  postgres://USER:PASSWORD@HOST:PORT/DATABASE   PostgreSQL (postgresql:// too)',
  '  mysql://USER:PASSWORD@HOST:PORT/DATABASE      MySQL (mariadb:// for MariaDB)',
  '  sqlite:PATH, file:PATH, file:///PATH or PATH  an SQLite file, which must exist',
  'URL parameters (?NAME=VALUE&…; any other is refused):',
  '  PostgreSQL     host (a name, or a Unix socket directory), port, sslmode (disable, require, verify-ca,',
  '                 verify-full), sslrootcert, sslcert, sslkey (files), options=-c search_path=SCHEMA',
  '  MySQL/MariaDB  socketPath, ssl (true, false), sslmode or ssl-mode (DISABLED, REQUIRED, VERIFY_CA,',
  '                 VERIFY_IDENTITY), sslca, sslcert, sslkey or ssl-ca, ssl-cert, ssl-key (files)',
].join('\n');

const EXIT_CODES = [
  'Exit codes:',
  '  0   done',
  '  1   error: the database cannot be reached, the lock table does not exist, an operation failed,',
  '      or a reset was not confirmed',
  '  2   set --fail aborted: a name was already locked, and no lock was created',
  '  64  usage error: unknown command or option, bad or missing value (the message names it)',
  '  141 the output was closed before it was all written (as by "| head"); the command itself ran to its',
  '      end. A shell reports the same status for a command that a closed pipe ended (128 + SIGPIPE)',
].join('\n');

/** What the command line asks for: a help text, or a checked command ready to connect and run. */
type Invocation = { help: string } | { command: Command; run: CommandRun; target: DatabaseTarget; tableName: string };

function mainHelp(): string {
  const commands = alignColumns([
    ...COMMANDS.map((command) => [`  ${command.name}`, command.summary]),
    ['  help COMMAND', 'Show the options of a command'],
  ]);
  return [
    `Usage: ${PROGRAM} COMMAND [options]`,
    '',
    "Lists, clears, resets and sets the locks in an app's lock table, through the same code as the app.",
    '',
    'Commands:',
    ...commands,
    '',
    'Options of every command:',
    ...optionLines(COMMON_OPTIONS),
    '',
    DATABASES,
    '',
    EXIT_CODES,
    '',
    `Lock names that start with "-" go after "--": ${PROGRAM} clear -- -name`,
    `Run "${PROGRAM} help COMMAND" for the options of a command.`,
    '',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [
    `Usage: ${PROGRAM} ${command.name} ${command.synopsis} [--url URL] [--table NAME] [--schema NAME]`.replace(/ +/g, ' '),
    '',
    command.description,
    '',
    'Options:',
    ...optionLines([...command.options, ...COMMON_OPTIONS]),
    '',
    DATABASES,
    '',
    EXIT_CODES,
    '',
  ].join('\n');
}

function optionLines(options: CommandOption[]): string[] {
  return alignColumns(
    options.map((option) => [
      `  ${option.short ? `-${option.short}, ` : ''}--${option.name}${option.valueName ? ` ${option.valueName}` : ''}`,
      option.description,
    ]),
  );
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    throw new UsageError(`unknown command "${name}"; the commands are ${COMMANDS.map((c) => c.name).join(', ')}.`);
  }
  return command;
}

/** Checks the whole command line before anything connects; a mistake throws an error naming the argument. */
function readCommandLine(args: string[], environment: NodeJS.ProcessEnv): Invocation {
  const [first, ...rest] = args;
  if (first === '--help' || first === '-h') return { help: mainHelp() };
  if (first === 'help') return { help: rest.length === 0 ? mainHelp() : commandHelp(findCommand(rest[0])) };
  if (first.startsWith('-')) throw new UsageError(`the command comes first, before ${JSON.stringify(first)}: ${PROGRAM} COMMAND [options].`);
  const command = findCommand(first);
  const options = Object.fromEntries(
    [...command.options, ...COMMON_OPTIONS].map(({ name, type, short }) => [name, short ? { type, short } : { type }]),
  );
  const { values, positionals } = parseArgs({ args: rest, options, allowPositionals: command.takesNames, strict: true });
  const given = values as OptionValues;
  if (given.help) return { help: commandHelp(command) };
  if (command.takesNames && positionals.length === 0) throw new UsageError('at least one lock NAME is needed.');
  const run = command.prepare(given, positionals);
  const tableName = checkIdentifier(given.table ?? 'lockmgr_lock', '--table', MAX_TABLE_NAME_LENGTH);
  const url = (given.url as string | undefined) ?? environment.DATABASE_URL;
  if (url === undefined) throw new UsageError('no database given: pass --url URL or set DATABASE_URL.');
  const target = parseDatabaseUrl(url, given.url === undefined ? 'DATABASE_URL' : '--url', given.schema as string | undefined);
  return { command, run, target, tableName };
}

/** TypeError and RangeError come from the argument checks (`util.parseArgs` throws TypeErrors too). */
function isUsageError(error: unknown): error is Error {
  return error instanceof UsageError || error instanceof TypeError || error instanceof RangeError;
}

/** `nestjs-lockmgr list`, the start of the command's messages, or `nestjs-lockmgr` when there is no such command. */
function messagePrefix(args: string[]): string {
  const command = COMMANDS.find((candidate) => candidate.name === args[0]);
  return command ? `${PROGRAM} ${command.name}` : PROGRAM;
}

/**
 * The values of `--url`, found before the command line is read: a message about any mistake in it
 * must already hide their passwords.
 */
function urlArguments(args: string[]): string[] {
  return args.flatMap((arg, index) => {
    if (arg === '--url') return args.slice(index + 1, index + 2);
    return arg.startsWith('--url=') ? [arg.slice('--url='.length)] : [];
  });
}

async function main(args: string[], { output, errors }: StandardStreams): Promise<number> {
  if (args.length === 0) {
    errors.write(mainHelp());
    return ExitCode.usage;
  }
  let invocation: Invocation;
  try {
    invocation = readCommandLine(args, process.env);
  } catch (error) {
    if (!isUsageError(error)) throw error;
    const command = COMMANDS.find((candidate) => candidate.name === args[0]);
    writeLine(errors, `${messagePrefix(args)}: ${error.message}`);
    writeLine(errors, `Run "${PROGRAM} help${command ? ` ${command.name}` : ''}" for usage.`);
    return ExitCode.usage;
  }
  if ('help' in invocation) {
    output.write(invocation.help);
    return ExitCode.success;
  }
  const { run, target, tableName } = invocation;
  const prefix = `${messagePrefix(args)}:`;
  let connection;
  try {
    // Loaded only now, so that help and usage errors answer without loading Nest and TypeORM.
    const { openLockConnection } = await import('./lock-connection');
    connection = await openLockConnection(target, tableName);
  } catch (error) {
    writeLine(errors, `${prefix} ${(error as Error).message}`);
    return ExitCode.failure;
  }
  try {
    return await run({
      locks: connection.locks,
      tableName,
      database: target.description,
      input: process.stdin,
      output,
      errors,
    });
  } catch (error) {
    writeLine(errors, `${prefix} ${error instanceof Error ? error.message : String(error)}`);
    return ExitCode.failure;
  } finally {
    await connection.close();
  }
}

const args = process.argv.slice(2);
const redact = redactor([process.env.DATABASE_URL ?? '', ...urlArguments(args)].flatMap(passwordsIn));
const streams = new StandardStreams(redact, (error) =>
  writeLine(streams.errors, `${messagePrefix(args)}: Could not write the output: ${error.message}`),
);
// A stream may fail after the command returned: the exit code is settled last.
process.on('exit', (code) => (process.exitCode = streams.exitCode(code)));

/** Whatever goes wrong unforeseen, even in a driver's callback, is told through the redacted standard error. */
function crashed(error: unknown): void {
  writeLine(streams.errors, inspect(error));
  process.exit(ExitCode.failure);
}
process.on('uncaughtException', crashed);
main(args, streams).then((code) => (process.exitCode = code), crashed);
