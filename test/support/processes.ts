import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Test processes run compiled, from `dist/` (`npm test` builds first). */
export function compiledScript(relativePath: string): string {
  const script = join(__dirname, '..', '..', 'dist', 'test', relativePath.replace(/\.ts$/, '.js'));
  if (!existsSync(script)) throw new Error(`${script} is missing: run "npm run build" (npm test does) first.`);
  return script;
}

export interface Finished {
  code: number | null;
  /** The signal that ended the process, if one did. */
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningScript {
  child: ChildProcess;
  /** Resolves with the first line of standard output that matches `pattern` (rejects if the process ends first). */
  line(pattern: RegExp): Promise<string>;
  finished: Promise<Finished>;
}

/** Starts a compiled test script as its own process. */
export function startScript(relativePath: string, args: string[] = []): RunningScript {
  const child = spawn(process.execPath, [compiledScript(relativePath), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk) => (stdout += chunk));
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const finished = new Promise<Finished>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const line = (pattern: RegExp) =>
    new Promise<string>((resolve, reject) => {
      const look = () => {
        const found = stdout.split('\n').find((text) => pattern.test(text));
        if (found === undefined) return false;
        child.stdout!.off('data', look);
        resolve(found);
        return true;
      };
      if (look()) return;
      child.stdout!.on('data', look);
      void finished.then(({ code, signal }) => {
        if (!look()) reject(new Error(`${relativePath} ended (${signal ?? `code ${code}`}) before printing ${pattern}:\n${stderr}`));
      });
    });
  return { child, line, finished };
}

/** Runs a compiled test script as its own process and resolves when it exits. */
export function runScript(relativePath: string, args: string[] = []): Promise<Finished> {
  return startScript(relativePath, args).finished;
}
