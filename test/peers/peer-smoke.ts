/**
 * The peer smoke suite (`npm run test:peers`): installs the packed package, as a user would, with the
 * lowest and with the highest version of every range of its `peerDependencies`, each combination in
 * a folder of its own, and runs an app there (`test/fixtures/peer-app/smoke-app.ts`) on SQLite,
 * PostgreSQL and MariaDB: a `@Cron` job under `@WithLock`, a locked route (423 while its lock is held)
 * and the health indicator. The highest Nest packages ship as ES modules only, so that combination's
 * app is an ES module; the lowest's is CommonJS.
 *
 * It prints one line per run and ends with "N passed, N failed"; it exits non-zero on any failure.
 * A database server that does not answer is skipped with a warning, unless CI=true.
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ts from 'typescript';
import { packCleanCheckout, REPOSITORY } from '../support/packed-package';
import { MYSQL_URL, POSTGRES_URL } from '../support/test-databases';

type Bound = 'lowest' | 'highest';

interface Combination {
  bound: Bound;
  /** Exact versions, by package name: every peer, and what the app needs beside them. */
  versions: Record<string, string>;
  /** The app's module system: the highest Nest packages are ES modules only. */
  appFile: 'smoke-app.cjs' | 'smoke-app.mjs';
}

interface SmokeDatabase {
  kind: 'sqlite' | 'postgres' | 'mysql';
  /** The driver peer it needs. */
  driver: string;
  /** Where the app finds it: a URL, or for SQLite a file in the combination's folder. */
  url: (folder: string) => string;
}

const DATABASES: SmokeDatabase[] = [
  { kind: 'sqlite', driver: 'better-sqlite3', url: (folder) => join(folder, 'smoke.sqlite') },
  { kind: 'postgres', driver: 'pg', url: () => POSTGRES_URL },
  { kind: 'mysql', driver: 'mysql2', url: () => MYSQL_URL },
];

/**
 * What the app needs beside the peers, which follow them: the HTTP platform of the same version as
 * `@nestjs/core`, and rxjs (a peer of Nest's, never imported by the package).
 */
const APP_PACKAGES: Record<string, (versions: Record<string, string>) => string> = {
  '@nestjs/platform-express': (versions) => versions['@nestjs/core'],
  rxjs: () => '^7.2.0',
};

interface Command {
  code: number | null;
  stdout: string;
  output: string;
}

/** Runs a command without blocking the others that run at the same time. */
function execute(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Promise<Command> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env });
    let stdout = '';
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => ((stdout += chunk), (output += chunk)));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, output }));
  });
}

async function succeed(command: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const done = await execute(command, args, cwd, env);
  if (done.code !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${done.code}):\n${done.output}`);
  return done.stdout;
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((version) => version.split('.').map(Number));
  return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
}

/** The lowest and the highest published version that `range` allows, as npm reads the range. */
async function boundsOf(name: string, range: string): Promise<Record<Bound, string>> {
  const listed = JSON.parse(await succeed('npm', ['view', `${name}@${range}`, 'version', '--json'], REPOSITORY)) as string | string[];
  const versions = (Array.isArray(listed) ? listed : [listed]).sort(compareVersions);
  if (versions.length === 0) throw new Error(`No published version of ${name} is in its range ${range}`);
  return { lowest: versions[0], highest: versions[versions.length - 1] };
}

async function combinations(): Promise<Combination[]> {
  const { peerDependencies } = JSON.parse(readFileSync(join(REPOSITORY, 'package.json'), 'utf8')) as { peerDependencies: Record<string, string> };
  const bounds = await Promise.all(Object.entries(peerDependencies).map(async ([name, range]) => [name, await boundsOf(name, range)] as const));
  return (['lowest', 'highest'] as const).map((bound) => {
    const versions = Object.fromEntries(bounds.map(([name, found]) => [name, found[bound]]));
    for (const [name, follow] of Object.entries(APP_PACKAGES)) versions[name] = follow(versions);
    const esModules = Number(versions['@nestjs/core'].split('.')[0]) >= 12;
    return { bound, versions, appFile: esModules ? 'smoke-app.mjs' : 'smoke-app.cjs' };
  });
}

/**
 * Where the native part of each better-sqlite3 version is kept once built: npm's cache keeps packages,
 * not what their install scripts build, and building one takes minutes of CPU.
 */
const BUILD_CACHE = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'nestjs-lockmgr', 'peers');

function builtSqlite(version: string): string {
  return join(BUILD_CACHE, `better-sqlite3-${version}-${process.platform}-${process.arch}-abi${process.versions.modules}.node`);
}

/**
 * Installs a combination and the packed package in a folder of its own (npm's cache is shared), with
 * better-sqlite3's native part from the build cache when it is there, built by its install script and
 * kept there when not.
 */
async function install(combination: Combination, tarball: string): Promise<string> {
  const folder = mkdtempSync(join(tmpdir(), `lockmgr-peers-${combination.bound}-`));
  const built = builtSqlite(combination.versions['better-sqlite3']);
  const cached = existsSync(built);
  const manifest = {
    name: `peer-smoke-${combination.bound}`,
    private: true,
    dependencies: { ...combination.versions, 'nestjs-lockmgr': `file:${tarball}` },
    allowScripts: { 'better-sqlite3': !cached, '@nestjs/core': false },
  };
  writeFileSync(join(folder, 'package.json'), JSON.stringify(manifest, null, 2));
  // JOBS: node-gyp compiles on every core.
  await succeed('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], folder, { ...process.env, JOBS: 'max' }).catch(
    (error: unknown) => {
      rmSync(folder, { recursive: true, force: true });
      throw error;
    },
  );
  const binary = join(folder, 'node_modules', 'better-sqlite3', 'build', 'Release', 'better_sqlite3.node');
  if (cached) {
    mkdirSync(dirname(binary), { recursive: true });
    copyFileSync(built, binary);
  } else {
    mkdirSync(BUILD_CACHE, { recursive: true });
    // Renamed into place whole, so that another run never reads half a file.
    copyFileSync(binary, `${built}.${process.pid}`);
    renameSync(`${built}.${process.pid}`, built);
  }
  const source = readFileSync(join(REPOSITORY, 'test', 'fixtures', 'peer-app', 'smoke-app.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: {
      module: combination.appFile.endsWith('.mjs') ? ts.ModuleKind.ES2022 : ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      experimentalDecorators: true,
      emitDecoratorMetadata: true,
      esModuleInterop: true,
    },
  });
  writeFileSync(join(folder, combination.appFile), outputText);
  return folder;
}

/** Whether a server answers at the host and port of `url`. */
function answers(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    socket.setTimeout(2000);
    socket.on('connect', () => (socket.destroy(), resolve(true)));
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => (socket.destroy(), resolve(false)));
  });
}

interface Answer {
  status: number;
  retryAfter: string | null;
  body: unknown;
}

interface SmokeReport {
  cronRuns: number;
  /** Why ticks were skipped, as the `skipped` lock event said. */
  skipped: string[];
  whileHeld: Answer;
  free: Answer;
  health: Answer;
}

/** What a user of the app would notice was wrong, if anything. */
function problemsOf(report: SmokeReport): string[] {
  const problems: string[] = [];
  if (report.cronRuns < 1) problems.push(`the @Cron job never ran under its lock (skipped ticks: ${JSON.stringify(report.skipped)})`);
  if (report.whileHeld.status !== 423 || !/^\d+$/.test(report.whileHeld.retryAfter ?? '')) {
    problems.push(`the route answered ${report.whileHeld.status} (Retry-After ${report.whileHeld.retryAfter}) while its lock was held, not 423`);
  }
  if (report.free.status !== 200 || JSON.stringify(report.free.body) !== '{"worked":true}') problems.push(`the free route answered ${report.free.status}`);
  if (report.health.status !== 200 || (report.health.body as { status?: string }).status !== 'ok') {
    problems.push(`GET /health answered ${report.health.status} ${JSON.stringify(report.health.body)}`);
  }
  return problems;
}

interface Outcome {
  label: string;
  passed: boolean;
  detail: string;
}

async function smoke(combination: Combination, folder: string, database: SmokeDatabase): Promise<Outcome> {
  const label = `${combination.bound} (${combination.appFile.endsWith('.mjs') ? 'ES module' : 'CommonJS'} app) on ${database.kind}, ${database.driver} ${combination.versions[database.driver]}`;
  const startedAt = performance.now();
  const env = { ...process.env, PEER_DATABASE: database.kind, PEER_URL: database.url(folder), PEER_TABLE: `peers_${combination.bound}_${process.pid}` };
  const done = await execute(process.execPath, [combination.appFile], folder, env);
  const seconds = `${((performance.now() - startedAt) / 1000).toFixed(1)} s`;
  const reportLine = done.stdout.trim().split('\n').at(-1) ?? '';
  if (done.code !== 0 || !reportLine.startsWith('{')) return { label, passed: false, detail: `exit ${done.code} after ${seconds}:\n${done.output}` };
  const problems = problemsOf(JSON.parse(reportLine) as SmokeReport);
  return { label, passed: problems.length === 0, detail: problems.length === 0 ? seconds : `${problems.join('; ')}\n${done.output}` };
}

async function main(): Promise<void> {
  const startedAt = performance.now();
  const elapsed = () => `${((performance.now() - startedAt) / 1000).toFixed(0)} s`;
  const work = mkdtempSync(join(tmpdir(), 'lockmgr-peers-'));
  const outcomes: Outcome[] = [];
  try {
    const [found, tarball] = await Promise.all([combinations(), Promise.resolve().then(() => packCleanCheckout(work).path)]);
    for (const combination of found) {
      console.log(`${combination.bound}: ${Object.entries(combination.versions).map(([name, version]) => `${name}@${version}`).join(' ')}`);
    }
    const reachable = await Promise.all(DATABASES.map(async (database) => database.kind === 'sqlite' || answers(database.url(work))));
    const databases = DATABASES.filter((database, index) => {
      if (reachable[index]) return true;
      const message = `${database.kind} at ${database.url(work)} does not answer`;
      if (process.env.CI === 'true') throw new Error(`${message} (CI=true: every database must be reachable)`);
      console.warn(`Skipping ${database.kind}: ${message}`);
      return false;
    });
    console.log(`packed and resolved in ${elapsed()}`);
    // Each combination installs and then runs on its own; the two overlap, and npm's cache is shared.
    await Promise.all(
      found.map(async (combination) => {
        const folder = await install(combination, tarball);
        console.log(`${combination.bound}: installed in ${elapsed()}`);
        try {
          for (const database of databases) {
            const outcome = await smoke(combination, folder, database);
            console.log(`${outcome.passed ? 'PASS' : 'FAIL'} ${outcome.label}: ${outcome.detail}`);
            outcomes.push(outcome);
          }
        } finally {
          rmSync(folder, { recursive: true, force: true });
        }
      }),
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const failed = outcomes.filter((outcome) => !outcome.passed).length;
  console.log(`peer smoke suite done in ${elapsed()}`);
  console.log(`${outcomes.length - failed} passed, ${failed} failed`);
  if (failed > 0 || outcomes.length === 0) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
