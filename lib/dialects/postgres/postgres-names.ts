import { checkIdentifier } from '../../validation';

export interface PostgresNames {
  table: string;
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

/** Quoted, schema-qualified names of the lock table, its fencing-token sequence, its trigger and its queue of waiters. */
export function postgresNames(tableName: string, schema: string | undefined): PostgresNames {
  const prefix = schema ? `"${checkIdentifier(schema, 'the data source schema', 63)}".` : '';
  return {
    table: `${prefix}"${tableName}"`,
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
