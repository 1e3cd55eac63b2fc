// Issue 4: `etcdctl elect` keeps one leader across a store leader SIGKILL. Three real etcdctl 3.4
// campaigners run on the same election; exactly one prints its proposal. The store leader is
// killed: the elected campaigner keeps the election (its session lease survives the new store
// leader) and no other one is elected. Then the elected campaigner is interrupted (it resigns),
// and exactly one other one takes over.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { Cluster, clusterSubject } from '../support/cluster-process.js';
import { ETCDCTL_BINARY } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

const CAMPAIGNERS = 3;

interface Campaigner {
  readonly proposal: string;
  readonly child: ChildProcessWithoutNullStreams;
  stdout: string;
  stderr: string;
  hasExited: boolean;
}

function campaign(cluster: Cluster, proposal: string): Campaigner {
  const child = spawn(ETCDCTL_BINARY, [
    `--endpoints=${cluster.endpoints().join(',')}`, '--dial-timeout=2s', 'elect', 'cluster-test-election', proposal,
  ], { env: { ...process.env, ETCDCTL_API: '3' } });
  const campaigner: Campaigner = { proposal, child, stdout: '', stderr: '', hasExited: false };
  child.stdout.on('data', (chunk: Buffer) => { campaigner.stdout += chunk.toString(); });
  child.stderr.on('data', (chunk: Buffer) => { campaigner.stderr += chunk.toString(); });
  child.once('close', () => { campaigner.hasExited = true; });
  return campaigner;
}

function elected(campaigners: readonly Campaigner[]): Campaigner[] {
  return campaigners.filter((c) => c.stdout.split('\n').includes(c.proposal));
}

describe(`3 ${clusterSubject()} members: etcdctl elect across a store leader SIGKILL`, () => {
  let cluster: Cluster;
  const campaigners: Campaigner[] = [];

  beforeAll(async () => {
    cluster = await Cluster.start({ size: 3 });
  });

  afterAll(async () => {
    for (const c of campaigners) if (!c.hasExited) c.child.kill('SIGKILL');
    await waitFor('campaigners to exit', () => (campaigners.every((c) => c.hasExited) ? true : undefined), 10_000)
      .catch(() => undefined);
    await cluster?.teardown();
  });

  it('never has two elected campaigners, and hands over once on resign', async () => {
    onTestFailed(() => {
      console.error(campaigners.map((c) => `${c.proposal}: ${c.stdout} | ${c.stderr.slice(-500)}`).join('\n'));
      console.error(cluster.logTails(30));
    });
    for (let i = 0; i < CAMPAIGNERS; i++) campaigners.push(campaign(cluster, `proposal-${i}`));
    const first = await waitFor('one campaigner to be elected',
      () => (elected(campaigners).length > 0 ? elected(campaigners) : undefined), 20_000);
    expect(first).toHaveLength(1);
    const winner = first[0] as Campaigner;

    const leader = await cluster.leader();
    await cluster.kill(leader.index);
    const next = await cluster.newLeader(leader);
    // The cluster serves writes again (so campaigners could act), and still only the winner leads.
    await waitFor('a write through the new store leader', async () => {
      const put = await cluster.client(next.index).call('KV', 'Put',
        { key: Buffer.from('elect-probe'), value: Buffer.from('x') }, 2_000);
      return put.ok ? true : undefined;
    }, 15_000);
    await cluster.restart(leader.index);
    await cluster.converged(20_000);
    expect(elected(campaigners).map((c) => c.proposal)).toEqual([winner.proposal]);
    expect(winner.hasExited).toBe(false);

    // etcdctl elect resigns on SIGINT; exactly one other campaigner takes over.
    winner.child.kill('SIGINT');
    await waitFor('the winner to exit', () => (winner.hasExited ? true : undefined), 10_000);
    const others = campaigners.filter((c) => c !== winner);
    const second = await waitFor('another campaigner to be elected',
      () => (elected(others).length > 0 ? elected(others) : undefined), 20_000);
    expect(second).toHaveLength(1);
    expect(others.filter((c) => c.hasExited)).toEqual([]);
  }, 120_000);
});
