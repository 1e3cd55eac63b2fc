// Runs the real etcdctl 3.4 against a store and turns its output into a transcript that can be
// compared between real etcd and etcron: IDs, durations, sizes, raft numbers, ports and
// client-side log lines are normalised; everything else must match byte for byte.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { ETCDCTL_BINARY, type StoreProcess } from './etcd-process.js';
import { waitFor } from './ports.js';

export interface CtlResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function ctlArgs(store: StoreProcess, args: readonly string[]): string[] {
  return [`--endpoints=${store.endpoint}`, '--dial-timeout=3s', '--command-timeout=8s', ...args];
}

/** A running etcdctl: output read as it comes, stdin writable, stopped with a bounded wait. */
export class CtlProcess {
  private stdout = '';
  private stderr = '';
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly exited: Promise<void>;

  constructor(store: StoreProcess, readonly args: readonly string[], env: Readonly<Record<string, string>> = {}) {
    this.child = spawn(ETCDCTL_BINARY, ctlArgs(store, args), {
      env: { ...process.env, ETCDCTL_API: '3', ...env },
    });
    this.child.stdout.on('data', (chunk: Buffer) => { this.stdout += chunk.toString(); });
    this.child.stderr.on('data', (chunk: Buffer) => { this.stderr += chunk.toString(); });
    this.child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
  }

  output(): string {
    return this.stdout;
  }

  write(text: string): void {
    this.child.stdin.write(text);
  }

  endInput(): void {
    this.child.stdin.end();
  }

  hasExited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits until stdout matches; on timeout fails with everything printed so far. */
  async waitForOutput(pattern: RegExp, timeoutMs = 10_000): Promise<void> {
    await waitFor(`etcdctl ${this.args.join(' ')} to print ${String(pattern)}`, () => {
      if (pattern.test(this.stdout)) return true;
      if (this.hasExited()) {
        throw new Error(`exited (${this.child.exitCode}); stdout: ${this.stdout}; stderr: ${this.stderr}`);
      }
      return undefined;
    }, timeoutMs).catch((err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(`${message}\nstdout so far: ${JSON.stringify(this.stdout)}\nstderr: ${this.stderr}`);
    });
  }

  /** Waits for the process to exit by itself, killing it after timeoutMs. */
  async finish(timeoutMs = 15_000): Promise<CtlResult> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
    return this.result();
  }

  /** Sends a signal and waits for the exit (SIGKILL after 5 s). */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<CtlResult> {
    if (!this.hasExited()) this.child.kill(signal);
    return this.finish(5_000);
  }

  private result(): CtlResult {
    return {
      code: this.child.exitCode, signal: this.child.signalCode,
      stdout: this.stdout, stderr: this.stderr,
    };
  }
}

/** Runs one etcdctl command to completion (bounded). */
export async function etcdctl(
  store: StoreProcess, args: readonly string[], stdin?: string, timeoutMs = 15_000,
): Promise<CtlResult> {
  const process = new CtlProcess(store, args);
  if (stdin !== undefined) process.write(stdin);
  process.endInput();
  return process.finish(timeoutMs);
}

/** etcdctl's client-side zap log lines carry timestamps and UUIDs; their "Error:" line stays. */
function withoutLogLines(text: string): string {
  return text.split('\n').filter((line) => !line.startsWith('{"level":')).join('\n');
}

/** One side's record of a walkthrough: commands, outputs, exit codes. */
export class Transcript {
  private readonly entries: string[] = [];

  record(args: readonly string[], result: CtlResult, note = ''): void {
    const status = result.signal !== null ? `signal ${result.signal}` : `exit ${result.code}`;
    this.entries.push(
      `$ etcdctl ${args.join(' ')}${note === '' ? '' : `   # ${note}`}`,
      result.stdout.trimEnd(),
      ...(withoutLogLines(result.stderr).trim() === '' ? [] : [`stderr: ${withoutLogLines(result.stderr).trim()}`]),
      `[${status}]`,
    );
  }

  note(text: string): void {
    this.entries.push(`# ${text}`);
  }

  text(): string {
    return this.entries.join('\n');
  }
}

function aliasIn(map: Map<string, string>, prefix: string): (token: string) => string {
  return (token) => {
    const found = map.get(token);
    if (found !== undefined) return found;
    const made = `<${prefix}${map.size + 1}>`;
    map.set(token, made);
    return made;
  };
}

/** Normalises one side's transcript; see the file comment for what is masked. */
export function normalizeTranscript(text: string, store: StoreProcess): string {
  const hex = aliasIn(new Map(), 'id');
  const decimal = aliasIn(new Map(), 'n');
  return text
    .split(store.clientUrl).join('<client-url>')
    .split(store.peerUrl).join('<peer-url>')
    .split(store.endpoint).join('<endpoint>')
    .split(store.dataDir).join('<data-dir>')
    .replace(/took = [\d.]+(ns|µs|us|ms|s|m)/g, 'took = <duration>')
    .replace(/"(cluster_id|member_id|raft_term)":\d+,?/g, '')
    .replace(/"(ClusterID|MemberID|RaftTerm)" : \d+\n/g, '')
    .replace(/"(dbSize|dbSizeInUse|raftIndex|raftAppliedIndex|raftTerm|took)":[\d.]+/g, '"$1":"<n>"')
    .replace(/"ttl":\d+/g, '"ttl":"<ttl>"')
    .replace(/"(ID|id|lease|leader|Lease)"( ?: ?)(-?\d{5,})/g, (_all, name: string, sep: string, id: string) => `"${name}"${sep}${decimal(id)}`)
    .replace(/\b[0-9a-f]{13,16}\b/g, (id) => hex(id))
    .replace(
      /^(<endpoint>, <id\d+>, [^,]+, )[^,]+, (true|false), (true|false), \d+, \d+, \d+,/gm,
      '$1<size>, $2, $3, <term>, <index>, <index>,',
    )
    .replace(/remaining\((\d+)s\)/g, 'remaining(<ttl>)')
    // A lease's attached keys come in no defined order (etcd walks a map).
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_all, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_all, keys: string) => `"keys":[${keys.split(',').sort().join(',')}]`)
    .split('\n').map(tableLine).join('\n');
}

/** Table output: widths follow the content, and endpoint rows carry sizes and raft numbers. */
function tableLine(line: string): string {
  if (/^\+[-+]+\+$/.test(line)) return '+---+';
  if (!line.startsWith('|')) return line;
  const cells = line.split('|').map((cell) => cell.trim());
  if (cells[1] === '<endpoint>' && cells.length >= 11) {
    for (const index of [4, 7, 8, 9]) cells[index] = '<n>';
  }
  return cells.join(' | ').trim();
}

/** Line-by-line differences of two normalised transcripts, at most `max` lines. */
export function transcriptDifferences(left: string, right: string, max = 30): string[] {
  const a = left.split('\n');
  const b = right.split('\n');
  const out: string[] = [];
  for (let i = 0; i < Math.max(a.length, b.length) && out.length < max; i++) {
    if (a[i] !== b[i]) out.push(`line ${i + 1}:\n  etcd:    ${a[i] ?? '<none>'}\n  subject: ${b[i] ?? '<none>'}`);
  }
  return out;
}
