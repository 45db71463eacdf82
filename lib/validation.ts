/**
 * Argument checks shared by every public entry point. They run before any database call, so a bad
 * argument never leaves half an operation behind, and each error names the argument at fault.
 */

/** Ten years: longer leases are almost certainly a unit mistake (milliseconds for seconds). */
export const MAX_SECONDS = 10 * 365 * 24 * 3600;

/** Waits are timers, and Node's timers cannot be longer than 2^31 - 1 milliseconds (about 24.8 days). */
export const MAX_WAIT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

export function checkLockName(value: unknown, argument: string, maxLength: number): string {
  if (typeof value !== 'string') {
    throw new TypeError(`${argument} must be a string, got ${describe(value)}.`);
  }
  if (value.length === 0) throw new RangeError(`${argument} must not be empty.`);
  if (value.includes('\0')) throw new RangeError(`${argument} must not contain the NUL character.`);
  // Columns count characters (code points), not UTF-16 units.
  const length = [...value].length;
  if (length > maxLength) {
    throw new RangeError(`${argument} is ${length} characters long; the lock table allows at most ${maxLength}.`);
  }
  return value;
}

/** Seconds that must be a finite number in [minimum, maximum]. */
export function checkSeconds(value: unknown, argument: string, maximum = MAX_SECONDS, minimum = 0): number {
  if (typeof value !== 'number') {
    throw new TypeError(`${argument} must be a number of seconds, got ${describe(value)}.`);
  }
  if (!Number.isFinite(value)) throw new RangeError(`${argument} must be a finite number of seconds, got ${value}.`);
  if (value < minimum) throw new RangeError(`${argument} must be at least ${minimum} seconds, got ${value}.`);
  if (value > maximum) throw new RangeError(`${argument} must be at most ${maximum} seconds, got ${value}.`);
  return value;
}

/** A lease length: seconds, or 0 / null for a lock that never expires (returned as null). */
export function checkExpires(value: unknown, argument: string): number | null {
  if (value === null || value === 0) return null;
  return checkSeconds(value, argument);
}

export function checkOptionalSeconds(value: unknown, argument: string, maximum?: number): number | undefined {
  return value === undefined ? undefined : checkSeconds(value, argument, maximum);
}

export function checkBoolean(value: unknown, argument: string): boolean | undefined {
  if (value === undefined || typeof value === 'boolean') return value;
  throw new TypeError(`${argument} must be true or false, got ${describe(value)}.`);
}

export function checkText(value: unknown, argument: string, maxLength = 255): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new TypeError(`${argument} must be a string, got ${describe(value)}.`);
  if (value.includes('\0')) throw new RangeError(`${argument} must not contain the NUL character.`);
  if ([...value].length > maxLength) throw new RangeError(`${argument} must be at most ${maxLength} characters long.`);
  return value;
}

/** The name of a TypeORM data source: a non-empty string. `alternatives` says what else the argument accepts. */
export function checkDataSourceName(value: unknown, argument: string, alternatives = ''): string | undefined {
  if (value === undefined || (typeof value === 'string' && value.length > 0)) return value;
  throw new TypeError(`${argument} must be the name of a TypeORM data source${alternatives}.`);
}

/** A process id for the `lock_process` integer column, or null for none. */
export function checkProcessId(value: unknown, argument: string): number | null | undefined {
  if (value === undefined || value === null) return value;
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${argument} must be an integer process id or null, got ${describe(value)}.`);
  }
  if (value < -(2 ** 31) || value >= 2 ** 31) throw new RangeError(`${argument} must fit a 32-bit integer, got ${value}.`);
  return value;
}

export function checkOneOf<T extends string>(value: unknown, argument: string, allowed: readonly T[]): T | undefined {
  if (value === undefined || allowed.includes(value as T)) return value as T | undefined;
  throw new RangeError(`${argument} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describe(value)}.`);
}

export function checkSignal(value: unknown, argument: string): AbortSignal | undefined {
  if (value === undefined || value instanceof AbortSignal) return value;
  throw new TypeError(`${argument} must be an AbortSignal, got ${describe(value)}.`);
}

/** Options objects: anything but a plain object is a mistake, and so is a key we do not know. */
export function checkOptions<T extends object>(value: unknown, argument: string, known: readonly (keyof T)[]): Partial<T> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new TypeError(`${argument} must be an options object, got ${describe(value)}.`);
  }
  for (const key of Object.keys(value)) {
    if (!known.includes(key as keyof T)) {
      throw new TypeError(`${argument} has an unknown option "${key}"; known options: ${known.join(', ')}.`);
    }
  }
  return value as Partial<T>;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return `the string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return `${typeof value} ${String(value)}`;
  return typeof value;
}

/** Whether `value` is a plain SQL identifier: letters, digits and underscores, not starting with a digit. */
export function isPlainIdentifier(value: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(value);
}

/** Table and schema names are spliced into SQL text, so only plain identifiers pass. */
export function checkIdentifier(value: unknown, argument: string, maxLength: number): string {
  if (typeof value !== 'string') throw new TypeError(`${argument} must be a string, got ${describe(value)}.`);
  if (!isPlainIdentifier(value)) {
    throw new RangeError(
      `${argument} must be a plain SQL identifier (letters, digits and underscores, not starting with a digit), got ${describe(value)}.`,
    );
  }
  if (value.length > maxLength) throw new RangeError(`${argument} must be at most ${maxLength} characters long, got ${value.length}.`);
  return value;
}
