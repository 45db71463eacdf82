import type { LockMgrModuleOptions } from '../../lib';
import { createLockApp, dropLockTable, LockApp } from './lock-app';
import { ProxiedServer, proxyServer, TcpProxy } from './tcp-proxy';

export interface ProxiedLockApps {
  /** Between `proxied` and its database: make the network fail on cue. */
  proxy: TcpProxy;
  /** An instance that reaches the database directly. */
  direct: LockApp;
  /** An instance that reaches it through `proxy`, with `options`. */
  proxied: LockApp;
}

/**
 * Two instances of a lock app on the table `isolation` for one `describe` block, one of them behind a
 * proxy; the proxy is healed after each test, and everything is closed and dropped after the block.
 */
export function useProxiedLockApps(
  server: ProxiedServer,
  isolation: string,
  started: (apps: ProxiedLockApps) => unknown,
  options: LockMgrModuleOptions = {},
): void {
  let apps: Partial<ProxiedLockApps> = {};
  beforeAll(async () => {
    const direct = await createLockApp(server.database, isolation);
    const { proxy, throughProxy } = await proxyServer(server, isolation);
    apps = { direct, proxy };
    apps.proxied = await createLockApp(throughProxy, isolation, options);
    await started(apps as ProxiedLockApps);
  });
  afterEach(() => apps.proxy?.up());
  afterAll(async () => {
    apps.proxy?.up();
    await apps.proxied?.close();
    await apps.direct?.close();
    await apps.proxy?.close();
    await dropLockTable(server.database, isolation);
  });
}
