/** What a transaction needs of a driver's connection. */
export interface TransactionConnection {
  begin(): Promise<unknown>;
  commit(): Promise<unknown>;
  rollback(): Promise<unknown>;
  /** Gives the connection back to its pool; `broken`: it could not even roll back, so close it instead. */
  release(broken: boolean): void;
}

/** What a transaction's work returns: whether to commit, and its result. */
export interface TransactionOutcome<T> {
  commit: boolean;
  result: T;
}

/** Runs `work` in a transaction on one connection, commits only if it asks to, and rolls back if it throws. */
export async function inTransaction<T>(connection: TransactionConnection, work: () => Promise<TransactionOutcome<T>>): Promise<T> {
  let broken = false;
  try {
    await connection.begin();
    const { commit, result } = await work();
    await (commit ? connection.commit() : connection.rollback());
    return result;
  } catch (error) {
    await connection.rollback().catch(() => (broken = true));
    throw error;
  } finally {
    connection.release(broken);
  }
}
