import type { MemberId } from './types.js';

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/** The highest index that a majority of voters hold (Raft §5.3: what the leader may commit). */
export function committedIndex(
  voters: readonly MemberId[],
  matchOf: (id: MemberId) => number,
): number {
  if (voters.length === 0) return 0;
  const matches = voters.map(matchOf).sort((a, b) => b - a);
  return matches[majority(voters.length) - 1] ?? 0;
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
