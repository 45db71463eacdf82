/** The database that schema statements are written for, as a migration sees it. */
export interface SchemaDatabase {
  /** The data source's schema (PostgreSQL); unset: the connection's current one. */
  schema?: string;
  /** Asks the database: which server answers (MySQL), and what the lock table is made of (to revert it). */
  query: <Row>(sql: string, parameters?: unknown[]) => Promise<Row[]>;
}
