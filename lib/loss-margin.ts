/** The part of a short lease kept between declaring a lock lost and the lease's end. */
const LOSS_MARGIN_SHARE = 0.2;

/**
 * @internal Seconds before the end of a lease of `lease` seconds at which a holder whose renewals have
 * not landed must stop counting on it: `lossMargin` (the module's `operationTimeout`, the longest a
 * renewal may take to be confirmed), or a fifth of the lease when that is shorter.
 */
export function lossMarginSeconds(lossMargin: number, lease: number): number {
  return Math.min(lossMargin, lease * LOSS_MARGIN_SHARE);
}
