import { spawn } from 'node:child_process';
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
  stdout: string;
  stderr: string;
}

/** Runs a compiled test script as its own process and resolves when it exits. */
export function runScript(relativePath: string, args: string[] = []): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [compiledScript(relativePath), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}
