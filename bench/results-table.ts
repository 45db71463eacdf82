/** The table every section of `npm run bench` adds its rows to, printed and written to bench/results.md. */

interface Row {
  measure: string;
  result: string;
  ratio: string;
  target: string;
  met?: boolean;
}

const rows: Row[] = [];

export const format = (value: number, digits = 0) => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
export const rate = (value: number) => `${format(value)}/s`;
export const times = (value: number) => `${format(value, 2)} ×`;

/** Adds a row to the table, and prints it at once, so a long run shows its progress. */
export function row(measure: string, result: string, ratio = '', target = '', met?: boolean): void {
  rows.push({ measure, result, ratio, target, met });
  console.log(`  ${measure}: ${result} ${ratio} ${target} ${met === undefined ? '' : met ? 'met' : 'MISSED'}`);
}

/** The rows so far, as a Markdown table. */
export function table(): string {
  const lines = ['| Measure | Result | Ratio | Target | Met |', '|---|---|---|---|---|'];
  for (const { measure, result, ratio, target, met } of rows) {
    lines.push(`| ${measure} | ${result} | ${ratio} | ${target} | ${met === undefined ? '' : met ? 'yes' : '**no**'} |`);
  }
  return lines.join('\n');
}
