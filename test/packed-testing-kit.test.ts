import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const repository = join(__dirname, '..');
const fixture = join(__dirname, 'fixtures', 'new-app');

/** Runs a command to its end; its output (both streams), or an error that shows it. */
function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout: 240_000 });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed in ${cwd} (${result.error ?? `exit ${result.status}`}):\n${output}`);
  return output;
}

/**
 * A new app installs the package as npm publishes it (the tarball of `npm pack`, so only the files and
 * exports it ships), beside the Nest, TypeORM and jest packages of this repository, and no database.
 */
function newAppWithPackedPackage(): string {
  const folder = mkdtempSync(join(tmpdir(), 'lockmgr-new-app-'));
  cpSync(fixture, folder, { recursive: true });
  run('npm', ['pack', '--pack-destination', folder], repository);
  const tarball = readdirSync(folder).find((file) => file.endsWith('.tgz'))!;
  const modules = join(folder, 'node_modules');
  mkdirSync(join(modules, 'nestjs-lockmgr'), { recursive: true });
  run('tar', ['-xzf', join(folder, tarball), '-C', join(modules, 'nestjs-lockmgr'), '--strip-components=1'], folder);
  for (const entry of readdirSync(join(repository, 'node_modules'))) {
    if (entry !== 'nestjs-lockmgr') symlinkSync(join(repository, 'node_modules', entry), join(modules, entry));
  }
  return folder;
}

describe('A new app that installs the packed package', () => {
  let app: string;
  beforeAll(() => {
    app = newAppWithPackedPackage();
  }, 240_000);
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it('type-checks its imports of nestjs-lockmgr and nestjs-lockmgr/testing, with CommonJS and with Node16 resolution', () => {
    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], app);
    run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.nodenext.json'], app);
  }, 120_000);

  it('passes its jest tests of a @WithLock cron job and of getLock expiry, with no database', () => {
    const jest = join(app, 'node_modules', 'jest', 'bin', 'jest.js');
    const output = run(process.execPath, [jest, '--ci', '--colors=false'], app);
    expect(output).toMatch(/Tests:\s+2 passed, 2 total/);
  }, 240_000);
});
