import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { isPlainIdentifier } from '../../validation';
import { checkTableColumns, missingColumns, OUR_COLUMNS } from '../lock-table-columns';
import type { SchemaDatabase } from '../schema-database';
import { PostgresNames, postgresNames } from './postgres-names';
import { drawFencingToken } from './postgres-fencing-token';
import { PostgresExecutor, postgresTransaction } from './postgres-pool';
import { queueFunctions, queueRevertStatements, queueStatements } from './postgres-queue.schema';

/** What start-up found of the lock table, read from the catalogs without locking anything. */
export interface PostgresSchemaState {
  columns: string[];
  /** The declared length of `name`; null when the column is missing or unbounded. */
  nameLength: number | null;
  sequence: boolean;
  /** Whether this account may draw from the sequence (`nextval` needs USAGE or UPDATE on it). */
  sequenceUsable: boolean;
  trigger: boolean;
  /** The trigger's function draws tokens as this version does (one of an earlier version draws them without the timeline). */
  drawFunction: boolean;
  /** Whether the queue of waiters and its functions are there, as this version makes them. */
  queue: boolean;
  /** Whether this account may read and write the queue of waiters. */
  queueUsable: boolean;
}

/**
 * One catalog read: `$1` schema (null: the current one), `$2` table name, `$3` quoted sequence, `$4` quoted table,
 * `$5` trigger, `$6` the trigger function's signature, `$7` the body it has in this version, `$8` quoted queue,
 * `$9` the signatures of the queue's functions and `$10` their bodies in this version.
 */
const POSTGRES_SCHEMA_STATE = `SELECT
    ARRAY(SELECT column_name::text FROM information_schema.columns
      WHERE table_schema = coalesce($1::text, current_schema()) AND table_name = $2::text) AS columns,
    (SELECT character_maximum_length FROM information_schema.columns
      WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2 AND column_name = 'name') AS name_length,
    to_regclass($3::text) IS NOT NULL AS sequence,
    coalesce(has_sequence_privilege(to_regclass($3::text), 'USAGE, UPDATE'), false) AS sequence_usable,
    EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass($4::text) AND tgname = $5::text) AS trigger,
    coalesce((SELECT prosrc = $7::text FROM pg_proc WHERE oid = to_regprocedure($6::text)), false) AS draw_function,
    to_regclass($8::text) IS NOT NULL AND coalesce((SELECT bool_and(coalesce(prosrc = body, false))
      FROM unnest($9::text[], $10::text[]) AS queue_function (signature, body) LEFT JOIN pg_proc ON oid = to_regprocedure(signature)), false) AS queue,
    coalesce(has_table_privilege(to_regclass($8::text), 'SELECT') AND has_table_privilege(to_regclass($8::text), 'INSERT')
      AND has_table_privilege(to_regclass($8::text), 'UPDATE') AND has_table_privilege(to_regclass($8::text), 'DELETE'), false) AS queue_usable`;

function postgresSchemaStateValues(tableName: string, schema: string | undefined): unknown[] {
  const names = postgresNames(tableName, schema);
  const functions = queueFunctions(names);
  return [
    schema ?? null,
    tableName,
    names.sequence,
    names.table,
    names.drawTrigger,
    `${names.drawFunction}()`,
    drawFunctionBody(names),
    names.queue,
    functions.map(({ signature }) => signature),
    functions.map(({ body }) => body),
  ];
}

/** The body of the trigger function that draws the tokens of Django's rows (see `postgresSchemaStatements`). */
function drawFunctionBody({ advisoryClass, sequence }: PostgresNames): string {
  return `
      BEGIN
        PERFORM pg_advisory_xact_lock(${advisoryClass}, hashtext(NEW.name));
        NEW.fencing_token := ${drawFencingToken(sequence)};
        RETURN NEW;
      END
    `;
}

/** PostgreSQL also keeps the flag of a row that waiters wait for, so its release notifies them. */
const POSTGRES_COLUMNS = [...OUR_COLUMNS, 'waiting'];

/** Whether the table has everything our lock operations need (the trigger only orders the tokens of Django's rows). */
function postgresTableComplete(state: PostgresSchemaState): boolean {
  return state.sequence && missingColumns(state.columns, POSTGRES_COLUMNS).length === 0;
}

/** Whether start-up has nothing to create: a complete table is never locked nor altered. */
function postgresSchemaComplete(state: PostgresSchemaState): boolean {
  return postgresTableComplete(state) && state.queue && state.trigger && state.drawFunction;
}

/**
 * The DDL of the lock table, shared by `ensureTable` and the migration. Every statement is idempotent, and
 * the `ADD COLUMN`s complete a table that django-lockmgr created: rows a Django service inserts without our
 * columns get an owner token from the default and a fencing token from the trigger. Given what start-up
 * found (`state`), only the missing parts are returned.
 *
 * The trigger gives a row inserted without a token (Django's; ours always carry one, so the column's
 * default of 0 marks the others) its token under the same advisory lock of the name as our acquisitions
 * take before drawing theirs, held to commit. A column default would be drawn before the insert waits
 * on the name's uniqueness check, so a Django insert could commit with a lower token than a grant it
 * waited behind; under the lock, its token comes after every grant of the name committed before it,
 * and before every grant after it.
 */
function postgresSchemaStatements(tableName: string, schema?: string, state?: PostgresSchemaState): string[] {
  const names = postgresNames(tableName, schema);
  const { table, sequence, drawFunction, drawTrigger } = names;
  const tableStatements = [
    `CREATE SEQUENCE IF NOT EXISTS ${sequence}`,
    `CREATE TABLE IF NOT EXISTS ${table} (
      name varchar(255) PRIMARY KEY,
      locked_by varchar(255) NULL,
      lock_process integer NULL,
      locked_until timestamp with time zone NULL,
      created_at timestamp with time zone NOT NULL DEFAULT clock_timestamp(),
      updated_at timestamp with time zone NOT NULL DEFAULT clock_timestamp()
    )`,
    // Rows already in a Django table get their tokens as the column is added.
    `ALTER TABLE ${table}
      ADD COLUMN IF NOT EXISTS owner varchar(36) NOT NULL DEFAULT gen_random_uuid()::text,
      ADD COLUMN IF NOT EXISTS fencing_token bigint NOT NULL DEFAULT ${drawFencingToken(sequence)},
      ADD COLUMN IF NOT EXISTS waiting boolean NOT NULL DEFAULT false`,
    // Tokens outlive the table: a sequence owned by the column (as earlier versions made it) would be
    // dropped with it, and a table made again would restart its tokens at 1.
    `ALTER SEQUENCE ${sequence} OWNED BY NONE`,
  ];
  // Replacing the function is all that a trigger of an earlier version needs, which drew tokens without the timeline.
  const functionStatement = `CREATE OR REPLACE FUNCTION ${drawFunction}() RETURNS trigger LANGUAGE plpgsql AS $draw$${drawFunctionBody(names)}$draw$`;
  const triggerStatements = [
    functionStatement,
    `ALTER TABLE ${table} ALTER COLUMN fencing_token SET DEFAULT 0`,
    `DROP TRIGGER IF EXISTS "${drawTrigger}" ON ${table}`,
    `CREATE TRIGGER "${drawTrigger}" BEFORE INSERT ON ${table} FOR EACH ROW WHEN (NEW.fencing_token = 0)
      EXECUTE FUNCTION ${drawFunction}()`,
  ];
  const drawStatements = !state?.trigger ? triggerStatements : state.drawFunction ? [] : [functionStatement];
  return [...(state && postgresTableComplete(state) ? [] : tableStatements), ...(state?.queue ? [] : queueStatements(names)), ...drawStatements];
}

/** `$1` the quoted table: whether it exists, and whether nestjs-lockmgr created it (django-lockmgr's `created_at` has no default). */
const POSTGRES_TABLE_ORIGIN = `SELECT to_regclass($1::text) IS NOT NULL AS exists,
    EXISTS (SELECT FROM pg_attrdef JOIN pg_attribute ON attrelid = adrelid AND attnum = adnum
      WHERE adrelid = to_regclass($1::text) AND attname = 'created_at') AS created`;

/**
 * What the migration's `down` runs: drops the table nestjs-lockmgr created, or removes from a
 * django-lockmgr table only what it added (the columns `owner`, `fencing_token` and `waiting`, and the
 * trigger), leaving Django's columns and rows; and drops the queue of waiters. The fencing-token sequence is always kept, so that a
 * later `up` goes on from the last token.
 */
export async function postgresRevertStatements(tableName: string, database: SchemaDatabase): Promise<string[]> {
  const names = postgresNames(tableName, database.schema);
  const { table, sequence, drawFunction, drawTrigger } = names;
  const [origin] = await database.query<{ exists: boolean; created: boolean }>(POSTGRES_TABLE_ORIGIN, [table]);
  const statements = [`ALTER SEQUENCE IF EXISTS ${sequence} OWNED BY NONE`, ...queueRevertStatements(names)];
  if (origin.created) statements.push(`DROP TABLE ${table}`);
  else if (origin.exists) {
    statements.push(
      `DROP TRIGGER IF EXISTS "${drawTrigger}" ON ${table}`,
      `ALTER TABLE ${table} DROP COLUMN IF EXISTS owner, DROP COLUMN IF EXISTS fencing_token, DROP COLUMN IF EXISTS waiting`,
    );
  }
  return [...statements, `DROP FUNCTION IF EXISTS ${drawFunction}()`];
}

const INSUFFICIENT_PRIVILEGE = '42501';

/** Serialises instances starting together on one table: CREATE … IF NOT EXISTS alone can still collide. */
const LOCK_TABLE = `SELECT pg_advisory_xact_lock($1::int, 0)`;

/**
 * The schema that the functions of the lock table name their objects in: the data source's (`configured`),
 * or else the one unqualified names resolve to (`current`), written out. A function's body then reads the
 * same whether an instance names the schema or finds the table through the search path, so that each
 * finds the functions as it would make them, and none makes them again. A schema that no data source
 * could name (it is not a plain identifier) is left to the search path.
 */
export function functionsSchema(configured: string | undefined, current: string | null): string | undefined {
  if (configured !== undefined) return configured;
  return current !== null && isPlainIdentifier(current) ? current : undefined;
}

/** What the migration's `up` runs: `postgresSchemaStatements` for the schema its connection resolves names in. */
export async function postgresMigrationStatements(tableName: string, database: SchemaDatabase): Promise<string[]> {
  const asked = database.schema === undefined ? await database.query<{ schema: string | null }>('SELECT current_schema() AS schema') : [];
  return postgresSchemaStatements(tableName, functionsSchema(database.schema, asked[0]?.schema ?? null));
}

/** What the catalogs say of the lock table; reading them locks nothing. */
async function readSchemaState(executor: PostgresExecutor, tableName: string, schema: string | undefined): Promise<PostgresSchemaState> {
  const { rows } = await executor.query(POSTGRES_SCHEMA_STATE, postgresSchemaStateValues(tableName, schema));
  const [row] = rows;
  return {
    columns: row.columns,
    nameLength: row.name_length,
    sequence: row.sequence,
    sequenceUsable: row.sequence_usable,
    trigger: row.trigger,
    drawFunction: row.draw_function,
    queue: row.queue,
    queueUsable: row.queue_usable,
  };
}

/**
 * Creates only what is missing. A complete table is only read: DDL would take an ACCESS EXCLUSIVE lock
 * (waiting behind every transaction on the table) and need its ownership, even with nothing to add.
 * `schema` is the one the functions name (`functionsSchema`).
 */
export async function ensurePostgresTable(pool: Pool, tableName: string, schema: string | undefined): Promise<void> {
  const found = await readSchemaState(pool, tableName, schema);
  if (postgresSchemaComplete(found)) return;
  const { table, advisoryClass } = postgresNames(tableName, schema);
  try {
    await postgresTransaction(pool, async (client) => {
      await client.query(LOCK_TABLE, [advisoryClass]);
      const state = await readSchemaState(client, tableName, schema);
      for (const statement of postgresSchemaStatements(tableName, schema, state)) await client.query(statement);
      return { commit: true, result: undefined };
    });
  } catch (error) {
    // A table made by an earlier version lacks only the trigger that orders Django's tokens, or has one that
    // draws them without the timeline. An account that may not change it (it does not own the table) still
    // gets every guarantee among Nest instances.
    if (!postgresTableComplete(found) || (error as { code?: string }).code !== INSUFFICIENT_PRIVILEGE) throw error;
    const problem = found.trigger
      ? 'has a trigger of an earlier version, which draws the fencing tokens of rows inserted by django-lockmgr without the ' +
        'database timeline: they come out lower than the tokens of Nest grants before them'
      : 'lacks the trigger that keeps fencing tokens of rows inserted by django-lockmgr in grant order';
    new Logger('LockMgrModule').warn(
      `The lock table ${table} ${problem}, and this account may not change it: start once with the table's owner, ` +
        `or run the lock table migration (${(error as Error).message}).`,
    );
  }
}

/** Checks that the lock table has every column the lock operations use; resolves the longest name its `name` column holds. */
export async function inspectPostgresTable(pool: Pool, tableName: string, schema: string | undefined): Promise<number> {
  const { columns, nameLength, sequenceUsable, queue: queueFound, queueUsable } = await readSchemaState(pool, tableName, schema);
  const { table, sequence, queue } = postgresNames(tableName, schema);
  checkTableColumns(table, columns);
  if (!queueFound) {
    throw new Error(
      `The lock table ${table} has no queue of waiters ${queue}, through which this version serves waiters in order: start once with ensureTable and an ` +
        `account that may create tables, or run a lock table migration with a later timestamp, createLockTableMigration({ timestamp }).`,
    );
  }
  if (!queueUsable) {
    throw new Error(`The lock table ${table} serves waiters in order through ${queue}, which this account may not use: grant it SELECT, INSERT, UPDATE, DELETE on it.`);
  }
  if (!sequenceUsable) {
    throw new Error(
      `The lock table ${table} draws its fencing tokens from the sequence ${sequence}, which this account may not use (or which is missing): ` +
        `grant it USAGE on the sequence, as well as SELECT, INSERT, UPDATE, DELETE on the table.`,
    );
  }
  return nameLength ?? Number.MAX_SAFE_INTEGER;
}
