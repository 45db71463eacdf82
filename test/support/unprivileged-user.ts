import { readFileSync } from 'node:fs';

/**
 * The user and group a server of a test's own runs as: PostgreSQL and PgBouncer refuse to run as root,
 * so as root they run as the postgres user (which every PostgreSQL installation has); otherwise as
 * the user running the tests.
 */
export function unprivilegedUser(program: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'))
    .find(([name]) => name === 'postgres');
  if (!entry) throw new Error(`${program} does not run as root, and there is no postgres user to run it as.`);
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}
