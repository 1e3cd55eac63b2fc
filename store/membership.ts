import { createHash } from 'node:crypto';
import { FlagError } from './flags.js';

export interface InitialMember {
  readonly name: string;
  readonly peerUrls: readonly string[];
  readonly id: bigint;
}

/** A member's ID, as etcd computes it: SHA-1 over its sorted peer URLs and the cluster token. */
export function memberIdOf(peerUrls: readonly string[], token: string): bigint {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].sort()) hash.update(url);
  hash.update(token);
  return hash.digest().readBigUInt64BE(0);
}

/** The cluster ID, as etcd computes it: SHA-1 over the sorted member IDs, 8 bytes each. */
export function clusterIdOf(memberIds: readonly bigint[]): bigint {
  const hash = createHash('sha1');
  for (const id of [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const bytes = Buffer.alloc(8);
    bytes.writeBigUInt64BE(id);
    hash.update(bytes);
  }
  return hash.digest().readBigUInt64BE(0);
}

/** Parses --initial-cluster "name=url,name=url2,other=url3" into members. */
export function parseInitialCluster(spec: string, token: string): InitialMember[] {
  const byName = new Map<string, string[]>();
  for (const part of spec.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const at = part.indexOf('=');
    if (at <= 0) throw new FlagError(`--initial-cluster: "${part}" is not of the form name=url`);
    const name = part.slice(0, at);
    const url = part.slice(at + 1);
    const urls = byName.get(name) ?? [];
    urls.push(url);
    byName.set(name, urls);
  }
  if (byName.size === 0) throw new FlagError('--initial-cluster is empty');
  return [...byName].map(([name, peerUrls]) => ({ name, peerUrls, id: memberIdOf(peerUrls, token) }));
}
