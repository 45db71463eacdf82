/** What a password is replaced with. */
const REDACTED = '***';

/**
 * `USER:PASSWORD@` in any text: a user name, a colon (not a scheme's `://`), then everything up to the
 * last `@` before a blank or a quote (a password written unencoded may hold an `@` itself).
 */
const CREDENTIALS = /([^\s:@/\\'"`]+):(?!\/\/)([^\s'"`]*)@/g;

/** How the messages write the form of a URL; it is no password. */
const PLACEHOLDER = 'PASSWORD';

/**
 * The passwords a database URL may hold, as written and percent-decoded. The value may be malformed
 * (`postgres//USER:PASSWORD@HOST`, `postgres:/…`), so the user information is also looked for by hand:
 * after the first `//`, or else after the scheme, up to the last `@` of the whole value or of its host part.
 */
export function passwordsIn(url: string): string[] {
  const text = url.trim();
  const found = new Set<string>();
  try {
    found.add(new URL(text).password);
  } catch {
    // Not a URL as WHATWG reads it: what is written by hand below still counts.
  }
  const slashes = text.indexOf('//');
  let rest = slashes >= 0 ? text.slice(slashes + 2) : text;
  if (slashes < 0) {
    const afterScheme = rest.replace(/^[a-z][a-z0-9+.-]*:\/?/i, '');
    if (afterScheme.includes(':')) rest = afterScheme;
  }
  const host = rest.split(/[/?#]/, 1)[0];
  for (const part of [rest, host]) {
    const at = part.lastIndexOf('@');
    const colon = part.indexOf(':');
    if (at > 0 && colon >= 0 && colon < at) found.add(part.slice(colon + 1, at));
  }
  for (const password of [...found]) found.add(percentDecoded(password));
  found.delete('');
  return [...found];
}

function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The one function every message goes through before it is shown: it removes the given passwords
 * wherever they appear (a driver may quote a connection string, or the server a name), and the
 * password of any `USER:PASSWORD@` in the text.
 */
export function redactor(passwords: Iterable<string>): (text: string) => string {
  // The longest first, so that a password holding a shorter one is removed whole.
  const secrets = [...new Set(passwords)].filter((password) => password !== '').sort((a, b) => b.length - a.length);
  return (text) => {
    let redacted = text;
    for (const secret of secrets) redacted = redacted.split(secret).join(REDACTED);
    return redacted.replace(CREDENTIALS, (credentials, user: string, password: string) =>
      password === PLACEHOLDER ? credentials : `${user}:${REDACTED}@`,
    );
  };
}
