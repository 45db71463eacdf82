import { readFileSync } from 'node:fs';
import { UsageError } from './command';

/** The parameters a kind of URL takes: each spelling accepted, and the name it is read by. */
export type ParameterSpellings = Readonly<Record<string, string>>;

/**
 * The query of a database URL (`?sslmode=require&…`), checked before anything connects: every
 * parameter is one the URL's kind takes, given once, percent-decoded (a `+` stays a `+`, as libpq
 * reads it). A parameter nobody reads would be a setting silently dropped, such as a demand for TLS.
 */
export class UrlParameters {
  private constructor(
    /** `--url` or `DATABASE_URL`, as messages name the URL. */
    readonly argument: string,
    /** By the name each parameter is read by: its value, and how the URL spelled it (for messages). */
    private readonly given: ReadonlyMap<string, { spelling: string; value: string }>,
  ) {}

  static read(query: string, argument: string, spellings: ParameterSpellings): UrlParameters {
    const given = new Map<string, { spelling: string; value: string }>();
    for (const pair of query.replace(/^\?/, '').split('&')) {
      if (pair === '') continue;
      const separator = pair.indexOf('=');
      const spelling = decoded(separator < 0 ? pair : pair.slice(0, separator), 'a parameter name', argument);
      const name = Object.hasOwn(spellings, spelling) ? spellings[spelling] : undefined;
      if (name === undefined) {
        const known = listed(Object.keys(spellings), 'and');
        throw new UsageError(`${argument} has the unknown parameter "${spelling}"; the parameters it takes are ${known}.`);
      }
      const earlier = given.get(name);
      if (earlier) {
        const as = earlier.spelling === spelling ? '' : ` (as ${earlier.spelling} and ${spelling})`;
        throw new UsageError(`${argument} gives the parameter ${name} twice${as}; give it once.`);
      }
      given.set(name, { spelling, value: decoded(separator < 0 ? '' : pair.slice(separator + 1), `the parameter ${spelling}`, argument) });
    }
    return new UrlParameters(argument, given);
  }

  /** The value of a parameter, or undefined when the URL does not give it. */
  value(name: string): string | undefined {
    return this.given.get(name)?.value;
  }

  /** How the URL names a parameter, for messages: `ssl-mode` or `sslmode`. */
  spelling(name: string): string {
    return this.given.get(name)?.spelling ?? name;
  }

  /**
   * The meaning of a parameter's value, one of `choices` (compared without regard to case), or
   * undefined when the URL does not give it. `refused` says why a value that exists elsewhere is not
   * taken here.
   */
  choice<T>(name: string, choices: Readonly<Record<string, T>>, refused: Readonly<Record<string, string>> = {}): T | undefined {
    const value = this.value(name);
    if (value === undefined) return undefined;
    const matches = (key: string) => key.toLowerCase() === value.toLowerCase();
    const chosen = Object.keys(choices).find(matches);
    if (chosen !== undefined) return choices[chosen];
    const reason = Object.keys(refused).find(matches);
    throw new UsageError(
      `${this.argument} parameter ${this.spelling(name)} must be ${listed(Object.keys(choices), 'or')}, got ${JSON.stringify(value)}` +
        `${reason === undefined ? '' : `, which ${refused[reason]}`}.`,
    );
  }

  /** The contents of the file a parameter names, read now, so that a wrong path fails before connecting. */
  file(name: string): Buffer | undefined {
    const path = this.value(name);
    if (path === undefined) return undefined;
    if (path === '') throw new UsageError(`${this.argument} parameter ${this.spelling(name)} names no file.`);
    try {
      return readFileSync(path);
    } catch (error) {
      throw new UsageError(`${this.argument} parameter ${this.spelling(name)}: cannot read ${JSON.stringify(path)}: ${(error as Error).message}`);
    }
  }
}

/** `a, b or c`, `a, b and c`. */
function listed(words: string[], conjunction: 'and' | 'or'): string {
  return words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} ${conjunction} ${words[words.length - 1]}`;
}

function decoded(text: string, what: string, argument: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new UsageError(`${argument} has a malformed %-escape in ${what}.`);
  }
}
