// An N-member store cluster (3 or 5) of real etcd or `etcron store`, started with etcd's own
// flags on 127.0.0.1, with real faults: SIGKILL, SIGTERM,
// restart on the same data dir, SIGSTOP/SIGCONT. The subject comes from ETCRON_CLUSTER_SUBJECT
// (etcd | etcron, default etcron). Every process is killed and every temp dir removed by
// teardown(), and, should the test process die first, by an exit hook.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompatClient, child, int, text, type Outcome } from './compat-client.js';
import { ETCD_BINARY, ETCRON_BIN } from './etcd-process.js';
import { PeerProxies, type LinkDelay } from './cluster-partition.js';
import { freePort, waitFor } from './ports.js';

export type ClusterSubject = 'etcd' | 'etcron';

export function clusterSubject(): ClusterSubject {
  const value = process.env['ETCRON_CLUSTER_SUBJECT'] ?? 'etcron';
  if (value !== 'etcd' && value !== 'etcron') {
    throw new Error(`ETCRON_CLUSTER_SUBJECT must be etcd or etcron, not "${value}"`);
  }
  return value;
}

export interface ClusterOptions {
  readonly size: 1 | 3 | 5;
  readonly subject?: ClusterSubject;
  readonly heartbeatIntervalMs?: number;
  readonly electionTimeoutMs?: number;
  readonly startTimeoutMs?: number;
  readonly extraArgs?: readonly string[];
  /** Put a test-owned TCP proxy in front of each member's peer port (for isolate/heal). */
  readonly withPeerProxies?: boolean;
}

export type MemberState = 'running' | 'paused' | 'down';

export interface Member {
  readonly index: number;
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly endpoint: string; // 127.0.0.1:port
  readonly clientUrl: string;
  /** The advertised peer URL (the proxy's, with peer proxies). */
  readonly peerUrl: string;
  /** Where the member listens for peers. */
  readonly listenPeerUrl: string;
  readonly dataDir: string;
  readonly logPath: string;
}

export interface MemberStatus {
  readonly index: number;
  readonly memberId: string;
  readonly leaderId: string;
  readonly raftTerm: number;
  readonly raftIndex: number;
  readonly revision: number;
}

export interface LeaderInfo {
  readonly index: number;
  readonly memberId: string;
  readonly raftTerm: number;
}

/** Pids of every member process still alive in this test process, for the exit hook. */
const livePids = new Set<number>();
let isExitHookInstalled = false;

function installExitHook(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });
}

/** The time for a status probe of one member; a paused or dying member must not stall a poll. */
const STATUS_TIMEOUT_MS = 1_500;
/** Starts of one member's process over a cluster's life; a loop of restarts is a test bug. */
const STARTS_PER_MEMBER_MAX = 50;

/** A free port not in `taken` (the kernel may hand one out twice in a row once it is closed). */
async function uniqueFreePort(taken: Set<number>): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    if (!taken.has(port)) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no unused free port in 50 attempts');
}

export class Cluster {
  readonly subject: ClusterSubject;
  private readonly memberList: Member[];
  /** Members removed from the cluster by a membership change: left out of --initial-cluster. */
  private readonly removed = new Set<number>();
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  private readonly rootDir: string;
  private readonly token: string;
  private readonly children: (ChildProcess | null)[];
  private readonly exits: (Promise<void> | null)[];
  private readonly states: MemberState[];
  private readonly starts: number[];
  private readonly lastStatus: (string | undefined)[] = [];
  private readonly clients = new Map<number, CompatClient>();
  private proxies: PeerProxies | null = null;
  private isTornDown = false;

  private constructor(
    private readonly options: ClusterOptions,
    members: readonly Member[],
    rootDir: string,
  ) {
    this.subject = options.subject ?? clusterSubject();
    this.memberList = [...members];
    this.rootDir = rootDir;
    this.token = `etcron-test-${process.pid}-${Date.now()}`;
    this.heartbeatIntervalMs = options.heartbeatIntervalMs ?? 100;
    this.electionTimeoutMs = options.electionTimeoutMs ?? 1000;
    this.children = members.map(() => null);
    this.exits = members.map(() => null);
    this.states = members.map(() => 'down');
    this.starts = members.map(() => 0);
  }

  /** Starts every member, waits for every client port and for an agreed leader. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    installExitHook();
    const subject = options.subject ?? clusterSubject();
    const rootDir = mkdtempSync(join(tmpdir(), `etcron-cluster-${subject}-`));
    const members: Member[] = [];
    const taken = new Set<number>();
    const uniquePort = (): Promise<number> => uniqueFreePort(taken);
    for (let index = 0; index < options.size; index++) {
      const clientPort = await uniquePort();
      const peerPort = await uniquePort();
      const proxyPort = options.withPeerProxies === true ? await uniquePort() : peerPort;
      const dataDir = join(rootDir, `m${index + 1}`);
      mkdirSync(dataDir, { recursive: true });
      members.push({
        index, name: `m${index + 1}`, clientPort, peerPort,
        endpoint: `127.0.0.1:${clientPort}`,
        clientUrl: `http://127.0.0.1:${clientPort}`,
        peerUrl: `http://127.0.0.1:${proxyPort}`,
        listenPeerUrl: `http://127.0.0.1:${peerPort}`,
        dataDir, logPath: join(rootDir, `m${index + 1}.log`),
      });
    }
    const cluster = new Cluster({ ...options, subject }, members, rootDir);
    try {
      if (options.withPeerProxies === true) {
        const listen = members.map((m) => Number(new URL(m.peerUrl).port));
        cluster.proxies = new PeerProxies(listen, members.map((m) => m.peerPort),
          (index) => cluster.children[index]?.pid);
        await cluster.proxies.start();
      }
      for (const member of members) cluster.spawnMember(member.index, 'new');
      await Promise.all(members.map((member) => cluster.waitForClientPort(member.index)));
      await cluster.leader(options.startTimeoutMs ?? 20_000);
    } catch (err) {
      const logs = cluster.logTails();
      await cluster.teardown();
      throw new Error(`cluster of ${options.size} ${subject} members did not start: ${String(err)}\n${logs}`);
    }
    return cluster;
  }

  get members(): readonly Member[] {
    return this.memberList;
  }

  get size(): number {
    return this.members.length;
  }

  /**
   * A new member's ports and data dir, not started: its peer URL goes into `member add`, then
   * startJoining() starts it with --initial-cluster-state existing.
   */
  async prepareMember(): Promise<Member> {
    const index = this.memberList.length;
    const taken = new Set(this.memberList.flatMap((m) => [m.clientPort, m.peerPort]));
    const port = (): Promise<number> => uniqueFreePort(taken);
    const clientPort = await port();
    const peerPort = await port();
    const dataDir = join(this.rootDir, `m${index + 1}`);
    mkdirSync(dataDir, { recursive: true });
    const member: Member = {
      index, name: `m${index + 1}`, clientPort, peerPort,
      endpoint: `127.0.0.1:${clientPort}`, clientUrl: `http://127.0.0.1:${clientPort}`,
      peerUrl: `http://127.0.0.1:${peerPort}`, listenPeerUrl: `http://127.0.0.1:${peerPort}`,
      dataDir, logPath: join(this.rootDir, `m${index + 1}.log`),
    };
    this.memberList.push(member);
    this.children.push(null);
    this.exits.push(null);
    this.states.push('down');
    this.starts.push(0);
    return member;
  }

  /** Starts a prepared member that was added with `member add`: it joins the running cluster. */
  async startJoining(index: number): Promise<void> {
    this.spawnMember(index, 'existing');
    await this.waitForClientPort(index);
  }

  /** Marks a member as removed by `member remove` (it then stays out of --initial-cluster). */
  markRemoved(index: number): void {
    this.removed.add(index);
  }

  /** Resolves once the member's process has ended by itself (a removed member stops). */
  async waitForExit(index: number, timeoutMs: number): Promise<void> {
    await waitFor(`member ${index} to exit`, () => {
      const child = this.children[index];
      return child === null || child === undefined || child.exitCode !== null || child.signalCode !== null ? true : undefined;
    }, timeoutMs, 50);
    this.states[index] = 'down';
  }

  get quorum(): number {
    return Math.floor(this.members.length / 2) + 1;
  }

  member(index: number): Member {
    const found = this.members[index];
    if (found === undefined) throw new Error(`no member ${index} in a cluster of ${this.size}`);
    return found;
  }

  state(index: number): MemberState {
    this.member(index);
    return this.states[index] as MemberState;
  }

  endpoints(): string[] {
    return this.members.map((member) => member.endpoint);
  }

  runningIndexes(): number[] {
    return this.members.filter((m) => this.states[m.index] === 'running').map((m) => m.index);
  }

  pid(index: number): number {
    const pid = this.children[index]?.pid;
    if (pid === undefined) throw new Error(`member ${index} has no process`);
    return pid;
  }

  /** A cached raw gRPC client for one member (it survives the member's restarts). */
  client(index: number): CompatClient {
    let found = this.clients.get(index);
    if (found === undefined) {
      found = new CompatClient(this.member(index).endpoint);
      this.clients.set(index, found);
    }
    return found;
  }

  /** SIGKILL: no handlers run, nothing is flushed. Resolves once the process is gone. */
  async kill(index: number): Promise<void> {
    await this.signalAndWait(index, 'SIGKILL');
  }

  /** SIGTERM and wait for exit (a paused member is resumed first so it can act on it). */
  async stop(index: number): Promise<void> {
    if (this.states[index] === 'paused') this.resume(index);
    await this.signalAndWait(index, 'SIGTERM');
  }

  /** Starts a down member again on the same data dir and ports, as etcd wants: `existing`. */
  async restart(index: number): Promise<void> {
    if (this.states[index] !== 'down') throw new Error(`member ${index} is ${this.states[index]}`);
    this.spawnMember(index, 'existing');
    await this.waitForClientPort(index);
  }

  /** Starts a down member again without waiting for it to serve: for a start expected to fail. */
  startAgain(index: number): void {
    if (this.states[index] !== 'down') throw new Error(`member ${index} is ${this.states[index]}`);
    this.spawnMember(index, 'existing');
  }

  /** The exit code of a member's process that has ended (null while it runs, or after a signal). */
  exitCode(index: number): number | null {
    return this.children[index]?.exitCode ?? null;
  }

  pause(index: number): void {
    if (this.states[index] !== 'running') throw new Error(`member ${index} is ${this.states[index]}`);
    process.kill(this.pid(index), 'SIGSTOP');
    this.states[index] = 'paused';
  }

  resume(index: number): void {
    if (this.states[index] !== 'paused') throw new Error(`member ${index} is ${this.states[index]}`);
    process.kill(this.pid(index), 'SIGCONT');
    this.states[index] = 'running';
  }

  /** Status of one running member, or null when it does not answer within a short bound. */
  async status(index: number): Promise<MemberStatus | null> {
    if (this.states[index] !== 'running') return null;
    const outcome = await this.client(index).call('Maintenance', 'Status', {}, STATUS_TIMEOUT_MS);
    this.lastStatus[index] = outcome.ok ? 'ok' : `${outcome.code}: ${outcome.message}`;
    return toStatus(index, outcome);
  }

  /** What the last Status call to each member returned, for timeout messages. */
  private describeStatuses(statuses: readonly MemberStatus[]): string {
    return this.members.map((m) => {
      const found = statuses.find((s) => s.index === m.index);
      const shown = found === undefined
        ? (this.lastStatus[m.index] ?? 'not asked')
        : `id ${found.memberId} leader ${found.leaderId} term ${found.raftTerm} index ${found.raftIndex}`;
      return `${m.name} (${this.states[m.index]}): ${shown}`;
    }).join('; ');
  }

  async statuses(): Promise<MemberStatus[]> {
    const all = await Promise.all(this.members.map((m) => this.status(m.index)));
    return all.filter((s): s is MemberStatus => s !== null);
  }

  /**
   * The leader as the members see it: a running member whose Status names itself leader, with at
   * least a quorum of members naming the same leader. Polls until `timeoutMs`.
   */
  async leader(timeoutMs = 15_000): Promise<LeaderInfo> {
    return waitFor(`a leader agreed by a quorum of ${this.size} ${this.subject} members`, async () => {
      const statuses = await this.statuses();
      for (const candidate of statuses) {
        if (candidate.leaderId !== candidate.memberId || candidate.memberId === '0') continue;
        const votes = statuses.filter((s) => s.leaderId === candidate.memberId).length;
        if (votes >= this.quorum) {
          return { index: candidate.index, memberId: candidate.memberId, raftTerm: candidate.raftTerm };
        }
      }
      // Thrown, not returned: waitFor keeps polling and puts the last of these in its timeout.
      throw new Error(`no agreed leader: ${this.describeStatuses(statuses)}`);
    }, timeoutMs, 50);
  }

  /**
   * Waits for a leader other than `previous` (which may be down or still running) that reports a
   * term above previous's. (etcd's Status can name a new leader a moment before its new term.)
   */
  async newLeader(previous: LeaderInfo, timeoutMs = 15_000): Promise<LeaderInfo> {
    const what = `a leader other than m${previous.index + 1} in a term above ${previous.raftTerm}`;
    return waitFor(what, async () => {
      // A failed poll throws, and waitFor reports the last failure if time runs out.
      const found = await this.leader(Math.min(timeoutMs, 3_000));
      const isNew = found.index !== previous.index && found.raftTerm > previous.raftTerm;
      if (!isNew) throw new Error(`leader is still m${found.index + 1} in term ${found.raftTerm}`);
      return found;
    }, timeoutMs, 50);
  }

  /** Waits until every running member reports the same revision and raft index. */
  async converged(timeoutMs = 15_000): Promise<MemberStatus[]> {
    const running = this.runningIndexes().length;
    return waitFor('running members to agree on revision and raft index', async () => {
      const statuses = await this.statuses();
      const first = statuses[0];
      if (statuses.length !== running || first === undefined) {
        throw new Error(`not all running members answer: ${this.describeStatuses(statuses)}`);
      }
      const isSame = statuses.every((s) => s.revision === first.revision && s.raftIndex === first.raftIndex);
      if (!isSame) throw new Error(`not converged: ${this.describeStatuses(statuses)}`);
      return statuses;
    }, timeoutMs, 50);
  }

  /** Cuts member `index` off from every other member, both ways (needs withPeerProxies). */
  isolate(index: number): void {
    this.member(index);
    if (this.proxies === null) throw new Error('isolate needs a cluster started withPeerProxies');
    this.proxies.isolate(index);
  }

  /** Restores every peer link. */
  /** Members the test left running whose process has exited anyway (a crash), with their logs. */
  unexpectedExits(): string[] {
    const out: string[] = [];
    this.members.forEach((member, index) => {
      const spawned = this.children[index];
      if (this.states[index] !== 'running' && this.states[index] !== 'paused') return;
      if (spawned !== null && spawned !== undefined && spawned.exitCode === null && spawned.signalCode === null) return;
      const code = spawned?.exitCode ?? spawned?.signalCode ?? 'unknown';
      out.push(`${member.name} exited (${String(code)}):\n${readFileSync(member.logPath, 'utf8').slice(-3_000)}`);
    });
    return out;
  }

  /** Delays every peer link (see PeerProxies.delayAll) until heal(). */
  delayPeerLinks(delay: LinkDelay): void {
    if (this.proxies === null) throw new Error('delayPeerLinks needs a cluster started withPeerProxies');
    this.proxies.delayAll(delay);
  }

  heal(options: { readonly resetConnections?: boolean } = {}): void {
    if (this.proxies === null) throw new Error('heal needs a cluster started withPeerProxies');
    this.proxies.heal(options);
  }

  /** Peer connections whose dialing member the proxies could not identify. */
  unidentifiedPeerConnections(): number {
    return this.proxies?.unidentified ?? 0;
  }

  /** The last lines of every member's log, for failure messages. */
  logTails(lines = 30): string {
    return this.members.map((member) => {
      let body = '';
      try {
        body = readFileSync(member.logPath, 'utf8').split('\n').slice(-lines).join('\n');
      } catch {
        body = '(no log)';
      }
      return `--- ${member.name} (${this.states[member.index]}) ${member.logPath}\n${body}`;
    }).join('\n');
  }

  /** Kills every process (resuming none: SIGKILL works on stopped processes) and removes dirs. */
  async teardown(): Promise<void> {
    if (this.isTornDown) return;
    this.isTornDown = true;
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
    await Promise.all(this.members.map((m) => this.signalAndWait(m.index, 'SIGKILL')));
    await this.proxies?.close();
    if (process.env['ETCRON_KEEP_CLUSTER_DIRS'] === '1') {
      process.stderr.write(`cluster dirs kept in ${this.rootDir}\n`);
    } else {
      rmSync(this.rootDir, { recursive: true, force: true });
    }
  }

  private initialCluster(): string {
    return this.members.filter((m) => !this.removed.has(m.index)).map((member) => `${member.name}=${member.peerUrl}`).join(',');
  }

  private spawnMember(index: number, clusterState: 'new' | 'existing'): void {
    const member = this.member(index);
    const starts = (this.starts[index] ?? 0) + 1;
    if (starts > STARTS_PER_MEMBER_MAX) throw new Error(`member ${index} started ${starts} times`);
    this.starts[index] = starts;
    const args = [
      '--name', member.name,
      '--data-dir', join(member.dataDir, 'data'),
      '--listen-client-urls', member.clientUrl,
      '--advertise-client-urls', member.clientUrl,
      '--listen-peer-urls', member.listenPeerUrl,
      '--initial-advertise-peer-urls', member.peerUrl,
      '--initial-cluster', this.initialCluster(),
      '--initial-cluster-state', clusterState,
      '--initial-cluster-token', this.token,
      '--heartbeat-interval', String(this.heartbeatIntervalMs),
      '--election-timeout', String(this.electionTimeoutMs),
      ...(this.options.extraArgs ?? []),
    ];
    const [command, argv] = this.subject === 'etcd'
      ? [ETCD_BINARY, args]
      : [process.execPath, [ETCRON_BIN, 'store', ...args]];
    // Output goes to a file: an undrained pipe would fill and stall the member (notes §3).
    const fd = openSync(member.logPath, 'a');
    let spawned: ChildProcess;
    try {
      spawned = spawn(command, argv, {
        stdio: ['ignore', fd, fd],
        detached: true,
        env: { ...process.env, ETCD_UNSUPPORTED_ARCH: process.env['ETCD_UNSUPPORTED_ARCH'] ?? '' },
      });
    } finally {
      closeSync(fd);
    }
    const pid = spawned.pid;
    if (pid === undefined) throw new Error(`could not spawn ${command}`);
    livePids.add(pid);
    this.children[index] = spawned;
    this.exits[index] = new Promise<void>((resolve) => {
      spawned.once('exit', () => {
        livePids.delete(pid);
        resolve();
      });
    });
    this.states[index] = 'running';
  }

  private async signalAndWait(index: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
    const spawned = this.children[index];
    const exited = this.exits[index];
    if (spawned === null || spawned === undefined || exited === null || exited === undefined) return;
    if (spawned.exitCode === null && spawned.signalCode === null) {
      try {
        process.kill(spawned.pid as number, signal);
      } catch {
        // Exited between the check and the signal.
      }
      const isGone = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 10_000).unref()),
      ]);
      if (!isGone) {
        process.kill(spawned.pid as number, 'SIGKILL');
        await exited;
      }
    }
    this.children[index] = null;
    this.exits[index] = null;
    this.states[index] = 'down';
  }

  private async waitForClientPort(index: number): Promise<void> {
    const member = this.member(index);
    await waitFor(`${member.name} to accept connections on ${member.clientPort}`, async () => {
      const spawned = this.children[index];
      if (spawned === null || spawned === undefined || spawned.exitCode !== null) {
        throw new Error(`${member.name} exited early:\n${this.logTails(40)}`);
      }
      return (await canConnect(member.clientPort)) ? true : undefined;
    }, this.options.startTimeoutMs ?? 20_000);
  }
}

function toStatus(index: number, outcome: Outcome): MemberStatus | null {
  if (!outcome.ok) return null;
  const header = child(outcome.value, 'header');
  return {
    index,
    memberId: text(header, 'member_id'),
    leaderId: text(outcome.value, 'leader'),
    raftTerm: int(outcome.value, 'raftTerm'),
    raftIndex: int(outcome.value, 'raftIndex'),
    revision: int(header, 'revision'),
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000, () => { socket.destroy(); resolve(false); });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
