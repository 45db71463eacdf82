import { checkIdentifier } from '../../validation';

export interface PostgresNames {
  table: string;
  /**
   * The class of the advisory locks that order the grants of a name (see `postgresStatements`). It comes
   * from the table's name alone, so that instances naming the schema and instances finding the table
   * through the search path take the same locks.
   */
  advisoryClass: number;
  sequence: string;
  /** The trigger function that draws the fencing tokens of rows inserted without one (by Django). */
  drawFunction: string;
  /** The trigger's name, which PostgreSQL scopes to the table. */
  drawTrigger: string;
  /** The table of waiters' places, which serves them in order (see `PostgresQueue`). */
  queue: string;
  /** Its index by name, which PostgreSQL scopes to the schema. */
  queueIndex: string;
  /** The functions of the queue (see `queueFunctions`). */
  placesAhead: string;
  takePlace: string;
  handOver: string;
  served: string;
  /** The hand-off function of earlier builds, which only told the first waiter its turn: dropped where it is found. */
  earlierHandOff: string;
}

/** A 32-bit key derived from a name, so advisory locks of different lock tables never meet. */
function advisoryClassId(name: string): number {
  let hash = 0x811c9dc5;
  for (const char of name) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
  return hash | 0;
}

/** Quoted, schema-qualified names of the lock table, its fencing-token sequence, its trigger and its queue of waiters. */
export function postgresNames(tableName: string, schema: string | undefined): PostgresNames {
  const prefix = schema ? `"${checkIdentifier(schema, 'the data source schema', 63)}".` : '';
  return {
    table: `${prefix}"${tableName}"`,
    // Quoted, as earlier versions hashed it for a table found through the search path.
    advisoryClass: advisoryClassId(`"${tableName}"`),
    sequence: `${prefix}"${tableName}_fencing_token_seq"`,
    drawFunction: `${prefix}"${tableName}_draw_fencing_token"`,
    drawTrigger: `${tableName}_draw_fencing_token`,
    queue: `${prefix}"${tableName}_queue"`,
    queueIndex: `${tableName}_queue_name`,
    placesAhead: `${prefix}"${tableName}_places_ahead"`,
    takePlace: `${prefix}"${tableName}_take_place"`,
    handOver: `${prefix}"${tableName}_hand_over"`,
    earlierHandOff: `${prefix}"${tableName}_hand_off"`,
    served: `${prefix}"${tableName}_served"`,
  };
}
