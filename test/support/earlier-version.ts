import type { DataSource } from 'typeorm';

/**
 * Makes the lock table `table` as an earlier version of nestjs-lockmgr left it on PostgreSQL: a trigger
 * function that draws the tokens of Django's rows straight from the sequence, without the timeline,
 * and a sequence that has already handed out `drawn` tokens.
 */
export async function installEarlierDrawFunction(admin: DataSource, table: string, drawn: number): Promise<void> {
  await admin.query(`CREATE OR REPLACE FUNCTION "${table}_draw_fencing_token"() RETURNS trigger LANGUAGE plpgsql AS $draw$
      BEGIN
        NEW.fencing_token := nextval('"${table}_fencing_token_seq"');
        RETURN NEW;
      END
    $draw$`);
  await admin.query(`SELECT setval('"${table}_fencing_token_seq"', $1)`, [drawn]);
}
