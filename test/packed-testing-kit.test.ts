import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PackedTarball, packCleanCheckout, REPOSITORY, run } from './support/packed-package';

const fixture = join(__dirname, 'fixtures', 'new-app');

/** The files the `exports` map of a package.json points at: every condition of every entry point. */
function exportTargets(exports: unknown): string[] {
  if (typeof exports === 'string') return [exports];
  if (typeof exports !== 'object' || exports === null) return [];
  return Object.values(exports).flatMap(exportTargets);
}

/**
 * A new app installs the package as npm publishes it (the tarball `npm pack` makes of a clean checkout,
 * so only the files and exports it ships), beside the Nest, TypeORM and jest packages of this
 * repository, and no database.
 */
function newAppWithPackedPackage(): { folder: string; packed: PackedTarball } {
  const folder = mkdtempSync(join(tmpdir(), 'lockmgr-new-app-'));
  cpSync(fixture, folder, { recursive: true });
  const packed = packCleanCheckout(folder);
  const modules = join(folder, 'node_modules');
  mkdirSync(join(modules, 'nestjs-lockmgr'), { recursive: true });
  run('tar', ['-xzf', packed.path, '-C', join(modules, 'nestjs-lockmgr'), '--strip-components=1'], folder);
  for (const entry of readdirSync(join(REPOSITORY, 'node_modules'))) {
    if (entry !== 'nestjs-lockmgr') symlinkSync(join(REPOSITORY, 'node_modules', entry), join(modules, entry));
  }
  return { folder, packed };
}

let app: string;
let packed: PackedTarball;
beforeAll(() => {
  ({ folder: app, packed } = newAppWithPackedPackage());
}, 300_000);
afterAll(() => rmSync(app, { recursive: true, force: true }));

describe('The tarball npm packs from a clean checkout', () => {
  const installed = () => join(app, 'node_modules', 'nestjs-lockmgr');

  it('ships the build of lib/, which its prepack makes, with the licence, the readme and the guides', () => {
    expect(packed.files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'package.json', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'docs/api.md']));
  });

  it('ships every file its exports map and its bin point at', () => {
    const manifest = JSON.parse(readFileSync(join(installed(), 'package.json'), 'utf8')) as { exports: unknown; bin: Record<string, string>; main: string; types: string };
    const targets = [...exportTargets(manifest.exports), ...Object.values(manifest.bin), manifest.main, manifest.types];
    expect(targets).toEqual(expect.arrayContaining(['./dist/lib/index.d.ts', './dist/lib/testing/index.js']));
    for (const target of targets) expect(`${target}: ${existsSync(join(installed(), target))}`).toBe(`${target}: true`);
  });

  it('ships source maps that carry their sources, since it does not ship lib/', () => {
    const maps = packed.files.filter((file) => file.endsWith('.js.map'));
    expect(maps.length).toBe(packed.files.filter((file) => file.endsWith('.js')).length);
    for (const map of maps) {
      const { sources, sourcesContent } = JSON.parse(readFileSync(join(installed(), map), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
      expect(`${map}: ${sourcesContent?.length}`).toBe(`${map}: ${sources.length}`);
    }
  });

  it('ships nothing of the tests, the sample, the benchmarks, nor sources the maps already carry', () => {
    const stray = packed.files.filter((file) => !/^(dist\/lib|docs)\//.test(file) && !['LICENSE', 'README.md', 'package.json'].includes(file));
    expect(stray).toEqual([]);
    const unwanted = (file: string) => /(^|\/)(test|sample|bench)\//.test(file) || file.startsWith('docs/api/') || (file.endsWith('.ts') && !file.endsWith('.d.ts'));
    expect(packed.files.filter(unwanted)).toEqual([]);
  });
});

describe('A new app that installs the packed package', () => {
  it('type-checks its imports of nestjs-lockmgr and nestjs-lockmgr/testing, with CommonJS and with Node16 resolution', () => {
    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.json'], app);
    run(process.execPath, [tsc, '--noEmit', '-p', 'tsconfig.nodenext.json'], app);
  }, 120_000);

  it('passes its jest tests of a @WithLock cron job and of getLock expiry, with no database', () => {
    const jest = join(app, 'node_modules', 'jest', 'bin', 'jest.js');
    const { output } = run(process.execPath, [jest, '--ci', '--colors=false'], app);
    expect(output).toMatch(/Tests:\s+2 passed, 2 total/);
  }, 240_000);
});
