export {
  startMaster, MASTER_ELECTION_PREFIX, DEFAULT_API_HOST, DEFAULT_API_PORT, DEFAULT_MASTER_LEASE_TTL_SECONDS,
  type Master, type MasterOptions,
} from './master.js';
export { startElection, readLeader, type Election, type ElectionOptions, type LeaderTerm } from './election.js';
export * from './control-keys.js';
