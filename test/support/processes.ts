import { ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Compiled test scripts: beside this file when it runs compiled itself (the soak), else in `dist/`. */
const COMPILED_TESTS = __filename.endsWith('.js') ? join(__dirname, '..') : join(__dirname, '..', '..', 'dist', 'test');

/** Test processes run compiled, from `dist/` (`npm test` builds first). */
export function compiledScript(relativePath: string): string {
  const script = join(COMPILED_TESTS, relativePath.replace(/\.ts$/, '.js'));
  if (!existsSync(script)) throw new Error(`${script} is missing: run "npm run build" (npm test does) first.`);
  return script;
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ScriptOptions {
  /** Added to this process's environment. */
  env?: Record<string, string>;
  /** Node options, such as `['-r', preloadScript]`. */
  execArgv?: string[];
}

/**
 * A compiled test script running as its own process, reporting events as JSON lines on its output.
 * `nextEvent()` reads them in order; `finished` resolves when it exits.
 */
export class ScriptProcess {
  readonly finished: Promise<Finished>;
  private readonly child: ChildProcess;
  private readonly events: unknown[] = [];
  private readonly readers: Array<(event: unknown) => void> = [];

  constructor(relativePath: string, args: string[] = [], options: ScriptOptions = {}) {
    this.child = spawn(process.execPath, [...(options.execArgv ?? []), compiledScript(relativePath), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      stdout += `${line}\n`;
      const event = JSON.parse(line);
      const reader = this.readers.shift();
      if (reader) reader(event);
      else this.events.push(event);
    });
    this.child.stderr!.on('data', (chunk) => (stderr += chunk));
    this.finished = new Promise((resolve, reject) => {
      this.child.on('error', reject);
      this.child.on('close', (code) => {
        for (const reader of this.readers.splice(0)) reader(new Error(`The script exited (code ${code}): ${stderr}`));
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** The next event the script reported. */
  nextEvent<T>(): Promise<T> {
    if (this.events.length) return Promise.resolve(this.events.shift() as T);
    return new Promise((resolve, reject) =>
      this.readers.push((event) => (event instanceof Error ? reject(event) : resolve(event as T))),
    );
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }
}

/** Runs a compiled test script as its own process and resolves when it exits. */
export function runScript(relativePath: string, args: string[] = [], options: ScriptOptions = {}): Promise<Finished> {
  return new ScriptProcess(relativePath, args, options).finished;
}
