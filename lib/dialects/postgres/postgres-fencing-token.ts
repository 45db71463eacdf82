/**
 * Tokens are `timeline × 2^40 + nextval(sequence)`. A sequence alone can go back across a failover: a
 * standby promoted before it received the old primary's last draws (asynchronous replication) draws
 * them again, and a fenced resource that saw them refuses the new holder while it accepts the one
 * the new primary no longer knows. Promotion starts a new, higher timeline at once, so the timeline
 * lifts every token of the new primary above those of the old one, as long as fewer than 2^40 draws
 * were lost. It costs no round trip and no privilege: both functions are executable by every role,
 * and the first 8 hex digits of the current WAL file's name are the timeline.
 *
 * Tokens stay safe integers while `timeline + sequence / 2^40` stays below 2^13.
 */
const TIMELINE_SHIFT = 40;

/** The SQL expression that draws a fencing token from `sequence` (quoted and schema-qualified). */
export function drawFencingToken(sequence: string): string {
  return `((('x' || left(pg_walfile_name(pg_current_wal_lsn()), 8))::bit(32)::bigint << ${TIMELINE_SHIFT}) + nextval('${sequence}'))`;
}
