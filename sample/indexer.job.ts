import { Injectable } from '@nestjs/common';
import { Interval } from '@nestjs/schedule';
import { LeaderOnly, LockService } from '../lib';

const LEASE = { expires: 10 };

/**
 * Work for one instance at a time with no schedule of its own: the instances elect a leader for
 * "indexer", and only the leader's timer does the work. Stop the leader (`kill -INT` its pid) and
 * another instance takes over within milliseconds; `kill -9` it, and within the 10-second lease.
 */
@Injectable()
export class IndexerJob {
  constructor(private readonly locks: LockService) {}

  @Interval(5000)
  @LeaderOnly('indexer', LEASE)
  index(): void {
    // The same leadership @LeaderOnly campaigns with: its term's fencing token guards what it writes.
    const { fencingToken } = this.locks.lead('indexer', LEASE);
    console.log(`indexed as the leader of "indexer" (term token ${fencingToken})`);
  }
}
