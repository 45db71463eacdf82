import type { WithoutPackagesReport } from '../workers/without-packages-worker';
import { compiledScript, runScript } from './processes';
import { sqliteFile } from './test-databases';

/**
 * Runs an app of nestjs-lockmgr on a SQLite file named after `isolation` in a process that cannot
 * find `packages`, as if they were never installed, and returns its report (on `reported`, by default
 * the hidden packages). It must exit cleanly.
 */
export async function runWithoutPackages(packages: string[], isolation: string, reported = packages): Promise<WithoutPackagesReport> {
  const finished = await runScript('workers/without-packages-worker.ts', [sqliteFile(isolation), isolation], {
    execArgv: ['-r', compiledScript('workers/without-packages.ts')],
    env: { LOCKMGR_HIDDEN_PACKAGES: packages.join(','), LOCKMGR_REPORTED_PACKAGES: reported.join(',') },
  });
  expect(finished.stderr).toBe('');
  expect(finished.code).toBe(0);
  return JSON.parse(finished.stdout) as WithoutPackagesReport;
}
