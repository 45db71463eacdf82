/** The columns nestjs-lockmgr adds to django-lockmgr's table, on every database. */
export const OUR_COLUMNS: readonly string[] = ['owner', 'fencing_token'];

/** Which of `ours` the table's `columns` lack. */
export function missingColumns(columns: string[], ours: readonly string[] = OUR_COLUMNS): string[] {
  return ours.filter((column) => !columns.includes(column));
}

/**
 * What `inspectTable` concludes from the names of the columns it found: it throws when the table is
 * missing, and when it lacks our columns (a django-lockmgr table not completed yet). `cannotComplete`
 * is the reason a database cannot complete such a table; without it, the error says how to.
 */
export function checkTableColumns(table: string, columns: string[], cannotComplete?: string): void {
  if (columns.length === 0) {
    throw new Error(
      `The lock table ${table} does not exist. Turn on the ensureTable option, or add the lock table migration to your migrations.`,
    );
  }
  const missing = missingColumns(columns).join(', ');
  if (!missing) return;
  if (cannotComplete) throw new Error(`The table ${table} lacks the columns ${missing} (it was likely created by django-lockmgr). ${cannotComplete}`);
  throw new Error(`The lock table ${table} lacks the columns ${missing}. Turn on the ensureTable option, or run the lock table migration, to add them.`);
}
