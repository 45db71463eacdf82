import { ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** The repository: above `test/support/`, or above `dist/test/support/` when this file runs compiled itself (the soak). */
const PACKAGE_ROOT = __filename.endsWith('.js') ? join(__dirname, '..', '..', '..') : join(__dirname, '..', '..');

/** Test processes run compiled, from `dist/` (`npm test` builds first). */
function compiled(script: string): string {
  if (!existsSync(script)) throw new Error(`${script} is missing: run "npm run build" (npm test does) first.`);
  return script;
}

export function compiledScript(relativePath: string): string {
  return compiled(join(PACKAGE_ROOT, 'dist', 'test', relativePath.replace(/\.ts$/, '.js')));
}

/** The `nestjs-lockmgr` command, where the package's `bin` points, as npm installs it. */
export function compiledCommand(): string {
  const { bin } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  return compiled(join(PACKAGE_ROOT, bin['nestjs-lockmgr']));
}

export interface Finished {
  code: number | null;
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ScriptOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Node options, such as `['-r', preloadScript]`. */
  execArgv?: string[];
  /** Keep the standard input open, to `send()` the script commands as JSON lines. */
  input?: boolean;
}

/**
 * A compiled test script running as its own process. It reports on its standard output: events as
 * JSON lines, read in order with `nextEvent()`, or plain lines, found with `line(pattern)`.
 * `finished` resolves when it exits.
 */
export class ScriptProcess {
  readonly finished: Promise<Finished>;
  private readonly child: ChildProcess;
  private readonly lines: string[] = [];
  private readonly events: unknown[] = [];
  private readonly readers: Array<(event: unknown) => void> = [];
  private readonly lookouts = new Set<() => void>();

  constructor(
    private readonly relativePath: string,
    args: string[] = [],
    options: ScriptOptions = {},
  ) {
    this.child = spawn(process.execPath, [...(options.execArgv ?? []), compiledScript(relativePath), ...args], {
      stdio: [options.input ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    let stderr = '';
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      this.lines.push(line);
      if (line.startsWith('{')) this.deliver(JSON.parse(line));
      for (const look of [...this.lookouts]) look();
    });
    this.child.stderr!.on('data', (chunk) => (stderr += chunk));
    this.finished = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code, signal) => {
        const ended = new Error(`${relativePath} ended (${signal ?? `code ${code}`}): ${stderr}`);
        for (const reader of this.readers.splice(0)) reader(ended);
        for (const look of [...this.lookouts]) look();
        resolve({ code, signal, stdout: this.lines.map((line) => `${line}\n`).join(''), stderr });
      });
    });
  }

  private deliver(event: unknown): void {
    const reader = this.readers.shift();
    if (reader) reader(event);
    else this.events.push(event);
  }

  /** Sends the script a command, as a JSON line on its standard input (see `ScriptOptions.input`). */
  send(command: object): void {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  /** The next JSON event the script reported. */
  nextEvent<T>(): Promise<T> {
    if (this.events.length) return Promise.resolve(this.events.shift() as T);
    return new Promise((resolve, reject) => this.readers.push((event) => (event instanceof Error ? reject(event) : resolve(event as T))));
  }

  /** The first line of output matching `pattern`, printed already or to come (rejects if the process ends first). */
  line(pattern: RegExp): Promise<string> {
    return new Promise((resolve, reject) => {
      const look = () => {
        const found = this.lines.find((text) => pattern.test(text));
        if (found !== undefined) resolve(found);
        else if (this.child.exitCode === null && this.child.signalCode === null) return;
        else reject(new Error(`${this.relativePath} ended before printing ${pattern}.`));
        this.lookouts.delete(look);
      };
      this.lookouts.add(look);
      look();
    });
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  get pid(): number {
    return this.child.pid!;
  }
}

/** Runs a compiled test script as its own process and resolves when it exits. */
export function runScript(relativePath: string, args: string[] = [], options: ScriptOptions = {}): Promise<Finished> {
  return new ScriptProcess(relativePath, args, options).finished;
}

export interface CommandOptions {
  /** Typed on the command's standard input, which then ends. */
  input?: string;
  /** The whole environment of the command: nothing is inherited, so no DATABASE_URL of this shell leaks in. */
  env?: Record<string, string>;
}

/** Runs `nestjs-lockmgr` with `args`, as a user would from a shell, and resolves when it exits. */
export function runCommand(args: string[], options: CommandOptions = {}): Promise<Finished> {
  return runProgram(compiledCommand(), args, options);
}

/** Runs one instance of the sample app, compiled, as `npm start` runs each of its instances, and resolves when it exits. */
export function runSampleApp(options: CommandOptions = {}): Promise<Finished> {
  return runProgram(compiled(join(PACKAGE_ROOT, 'dist', 'sample', 'main.js')), [], options);
}

function runProgram(script: string, args: string[], options: CommandOptions): Promise<Finished> {
  const child = spawn(process.execPath, [script, ...args], { env: { PATH: process.env.PATH ?? '', ...options.env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  child.stdin.end(options.input ?? '');
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}
