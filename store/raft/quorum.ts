import type { MemberId } from './types.js';

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of voters hold (Raft §5.3: what the leader may commit). Asked
 * at every acknowledgement; with 3 to 7 voters, counting for each candidate beats sorting a copy
 * (which allocated on every call, a steady feed for the scavenger).
 */
export function committedIndex(
  voters: readonly MemberId[],
  matchOf: (id: MemberId) => number,
): number {
  const needed = majority(voters.length);
  let best = 0;
  for (const voter of voters) {
    const candidate = matchOf(voter);
    if (candidate <= best) continue;
    let holding = 0;
    for (const other of voters) if (matchOf(other) >= candidate) holding++;
    if (holding >= needed) best = candidate;
  }
  return best;
}

export type VoteResult = 'won' | 'lost' | 'pending';

export function voteResult(
  voters: readonly MemberId[],
  votes: ReadonlyMap<MemberId, boolean>,
): VoteResult {
  let granted = 0;
  let missing = 0;
  for (const voter of voters) {
    const vote = votes.get(voter);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const needed = majority(voters.length);
  if (granted >= needed) return 'won';
  if (granted + missing >= needed) return 'pending';
  return 'lost';
}

export function hasQuorum(
  voters: readonly MemberId[],
  isMember: (id: MemberId) => boolean,
): boolean {
  let count = 0;
  for (const voter of voters) if (isMember(voter)) count++;
  return count >= majority(voters.length);
}
