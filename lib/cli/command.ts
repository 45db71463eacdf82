import type { LockService } from '../lock.service';
import { checkLockName } from '../validation';

/** The exit codes of `nestjs-lockmgr`, as its help lists them. */
export const ExitCode = {
  success: 0,
  /** The database could not be reached, the lock table is missing, an operation failed, or a reset was not confirmed. */
  failure: 1,
  /** `set --fail` met a lock that already existed, so it kept none of the locks it created. */
  setAborted: 2,
  /** The command line is wrong (EX_USAGE of BSD's sysexits). */
  usage: 64,
  /**
   * The reader of the output left before it was all written (`| head`); the command itself ran to its
   * end. 128 + SIGPIPE: what a shell reports for a command that a closed pipe ended.
   */
  outputClosed: 141,
} as const;

/** The command line is wrong: the message names the argument at fault. */
export class UsageError extends Error {}

/** An option as `util.parseArgs` reads it and as the help describes it. */
export interface CommandOption {
  name: string;
  type: 'string' | 'boolean';
  short?: string;
  /** How the help names the option's value, such as `SECONDS`. */
  valueName?: string;
  description: string;
}

/** Option values as `util.parseArgs` returns them. */
export type OptionValues = Record<string, string | boolean | undefined>;

/** What a command works with once the database is open. */
export interface CommandContext {
  locks: LockService;
  tableName: string;
  /** The database, described for people, without credentials. */
  database: string;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  errors: NodeJS.WritableStream;
}

/** The work of a command whose arguments were checked; it resolves to the exit code. */
export type CommandRun = (context: CommandContext) => Promise<number>;

export interface Command {
  name: string;
  /** The arguments after the command's name in the usage line. */
  synopsis: string;
  /** One line for the list of commands. */
  summary: string;
  /** Paragraphs of the command's help, between the usage line and the options. */
  description: string;
  options: CommandOption[];
  /** Whether the command takes lock names (at least one). */
  takesNames: boolean;
  /** Checks the arguments before anything connects, throwing an error that names the one at fault. */
  prepare(values: OptionValues, names: string[]): CommandRun;
}

/** `--seconds`-style values: a decimal number, checked further by the caller. */
export function parseNumber(value: string, argument: string): number {
  if (!/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(value.trim())) {
    throw new UsageError(`${argument} must be a number, got ${JSON.stringify(value)}.`);
  }
  return Number(value);
}

export function parseInteger(value: string, argument: string): number {
  if (!/^[+-]?\d+$/.test(value.trim())) throw new UsageError(`${argument} must be an integer, got ${JSON.stringify(value)}.`);
  return Number(value);
}

/**
 * Lock names given on the command line. How long a name the table holds is only known once
 * connected, and the service checks that then; the rest is checked here, before connecting.
 */
export function checkNames(names: string[]): string[] {
  return names.map((name, index) => checkLockName(name, `Lock name ${index + 1}`, Infinity));
}
