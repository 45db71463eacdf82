/** Which instance of the sample this process is: set by `sample/cluster.ts`, or by you. */
export const instanceName = process.env.INSTANCE_NAME ?? `pid-${process.pid}`;
