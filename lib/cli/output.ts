import type { LockEntity } from '../lock.entity';

export function writeLine(stream: NodeJS.WritableStream, line = ''): void {
  stream.write(`${line}\n`);
}

const ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text as it may reach a terminal: lock names are any Unicode, and a control character in one must
 * neither break a table's line nor send an escape sequence to the operator's terminal.
 */
export function printable(text: string): string {
  return text.replace(
    /[\u0000-\u001f\u007f-\u009f]/g,
    (character) => ESCAPES[character] ?? `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** Rows whose columns line up, two spaces apart; the last column is not padded. Cells are made printable. */
export function alignColumns(cells: string[][]): string[] {
  const rows = cells.map((row) => row.map(printable));
  // Code points, not UTF-16 units, so that names outside the Basic Multilingual Plane line up.
  const width = (text: string) => [...text].length;
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, column) => (widths[column] = Math.max(widths[column] ?? 0, width(cell))));
  return rows.map((row) =>
    row
      .map((cell, column) => (column === row.length - 1 ? cell : cell + ' '.repeat(widths[column] - width(cell))))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * When a lock expires, with the time left as the database counts it (the handle measured it from the
 * database's clock, so a skewed clock on the operator's machine does not change it).
 */
export function formatLockedUntil(lock: LockEntity): string {
  if (lock.lockedUntil === null) return 'never';
  const time = lock.lockedUntil.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  return `${time} (in ${formatDuration(Math.max(0, lock.expiresSeconds ?? 0))})`;
}

function formatDuration(seconds: number): string {
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

export function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

/** `1 lock`, `2 locks`. */
export function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
