import { createConnection } from 'mysql2/promise';
import { Client } from 'pg';
import { AVAILABILITY_VARIABLE, MYSQL_URL, POSTGRES_URL } from './test-databases';

interface Server {
  kind: string;
  label: string;
  url: string;
  start: string;
  check: () => Promise<void>;
}

const servers: Server[] = [
  {
    kind: 'postgres',
    label: 'PostgreSQL',
    url: POSTGRES_URL,
    start: "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    check: async () => {
      const client = new Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
      await client.connect();
      await client.end();
    },
  },
  {
    kind: 'mysql',
    label: 'MariaDB',
    url: MYSQL_URL,
    start: 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd',
    check: async () => {
      const connection = await createConnection({ uri: MYSQL_URL, connectTimeout: 3000 });
      await connection.end();
    },
  },
];

/** Tries each database server once per run and tells the test files which ones answered. */
export default async function globalSetup(): Promise<void> {
  const missing: string[] = [];
  for (const server of servers) {
    let available = true;
    try {
      await server.check();
    } catch (error) {
      available = false;
      missing.push(`${server.label} at ${server.url}: ${(error as Error).message}\n    start it with: ${server.start}`);
    }
    process.env[AVAILABILITY_VARIABLE(server.kind)] = available ? '1' : '0';
  }
  if (missing.length === 0) return;
  const report = `Database servers unreachable:\n  ${missing.join('\n  ')}`;
  if (process.env.CI === 'true') throw new Error(`${report}\nUnder CI=true every database suite must run.`);
  const rule = '!'.repeat(78);
  console.warn(`\n${rule}\n${report}\nTheir suites are SKIPPED. The SQLite suites still run.\n${rule}\n`);
}
