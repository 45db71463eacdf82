import type { ClientConfig } from 'pg';

/** The kinds of connection the module opens, as `pg_stat_activity.application_name` shows them. */
export type ModuleConnection = 'nestjs-lockmgr' | 'nestjs-lockmgr listener';

/** PostgreSQL cuts an application_name to 63 bytes: the app's part is shortened so that the module's stays whole. */
const MAX_APPLICATION_NAME_LENGTH = 63;

const URL_APPLICATION_NAME = /[?&]application_name=[^&#]*/;

/**
 * The settings of a connection of the module's, named so that an operator tells it apart from the app's
 * own in `pg_stat_activity`: the app's name followed by the kind in parentheses (`billing (nestjs-lockmgr)`),
 * or the kind alone when the app has no name. The app's name is found where pg looks for it: in the
 * URL, in the settings, or in `PGAPPNAME`. A name in the URL outweighs the setting, so it is replaced there.
 */
export function namedConnection<T extends ClientConfig>(config: T, kind: ModuleConnection): T {
  const inUrl = config.connectionString?.match(URL_APPLICATION_NAME)?.[0];
  const appName =
    inUrl !== undefined ? new URLSearchParams(inUrl.slice(1)).get('application_name') : (config.application_name ?? process.env.PGAPPNAME);
  const name = appName ? `${appName.slice(0, MAX_APPLICATION_NAME_LENGTH - kind.length - 3)} (${kind})` : kind;
  if (inUrl === undefined) return { ...config, application_name: name };
  const replaced = `${inUrl[0]}application_name=${encodeURIComponent(name)}`;
  return { ...config, connectionString: config.connectionString!.replace(URL_APPLICATION_NAME, () => replaced) };
}
