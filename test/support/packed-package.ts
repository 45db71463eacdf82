import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

/** The repository: above `test/support/`, or above `dist/test/support/` when this file runs compiled. */
export const REPOSITORY = __filename.endsWith('.js') ? join(__dirname, '..', '..', '..') : join(__dirname, '..', '..');

/** What a checkout does not have: build output, installed packages, generated docs (and packed tarballs). */
const NOT_CHECKED_OUT = new Set(['node_modules', 'dist', '.git', 'coverage', join('docs', 'api')]);

/** What a command printed: on its standard output, and on both streams. */
export interface Printed {
  stdout: string;
  output: string;
}

/** Runs a command to its end; what it printed, or an error that shows it. */
export function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Printed {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd} (${result.error ?? `exit ${result.status}`}):\n${output}`);
  return { stdout: result.stdout, output };
}

/** What `npm pack --json` says of the tarball it wrote. */
export interface PackedTarball {
  /** The tarball's path. */
  path: string;
  /** Every file in it, relative to the package's root. */
  files: string[];
}

/**
 * Packs the package as a clean checkout would: the repository's files without `dist/` (nor
 * `node_modules`, which it links to this repository's), so that `npm pack` ships only what its
 * `prepack` builds. The tarball is written to `destination`.
 */
export function packCleanCheckout(destination: string): PackedTarball {
  const checkout = mkdtempSync(join(tmpdir(), 'lockmgr-checkout-'));
  try {
    cpSync(REPOSITORY, checkout, {
      recursive: true,
      filter: (source) => !NOT_CHECKED_OUT.has(relative(REPOSITORY, source)) && !source.endsWith('.tgz'),
    });
    symlinkSync(join(REPOSITORY, 'node_modules'), join(checkout, 'node_modules'));
    // npm prints what the prepack script printed on the standard error: the standard output is its JSON alone.
    const [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', destination], checkout).stdout) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    return { path: join(destination, packed.filename), files: packed.files.map((file) => file.path) };
  } finally {
    rmSync(checkout, { recursive: true, force: true });
  }
}
