// A raw gRPC client for etcd 3.4's services, loaded from store/api/proto, plus the normaliser
// that makes etcd's and etcron's answers comparable (what is normalised: test/compat/README.md).
// Requests are plain objects in proto field names; bytes are Buffers, int64 are decimal strings.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { join } from 'node:path';
import { REPO_ROOT } from './etcd-process.js';
import { waitFor } from './ports.js';

/** A decoded protobuf value as proto-loader hands it out (longs as strings, bytes as Buffer). */
export type Wire =
  | null
  | undefined
  | boolean
  | number
  | string
  | Buffer
  | readonly Wire[]
  | { readonly [field: string]: Wire };
export type Msg = { readonly [field: string]: Wire };

export type Outcome =
  | { readonly ok: true; readonly value: Msg }
  | { readonly ok: false; readonly code: string; readonly message: string };

export type ServiceName = 'KV' | 'Watch' | 'Lease' | 'Cluster' | 'Maintenance';

const PROTO_DIR = join(REPO_ROOT, 'store', 'api', 'proto');
let definitions: protoLoader.PackageDefinition | undefined;

function packageDefinition(): protoLoader.PackageDefinition {
  definitions ??= protoLoader.loadSync(['rpc.proto', 'v3lock.proto', 'v3election.proto'], {
    includeDirs: [PROTO_DIR],
    keepCase: true,
    longs: String,
    enums: Number,
    defaults: true,
    oneofs: true,
  });
  return definitions;
}

function methodDefinition(service: string, method: string): grpc.MethodDefinition<Msg, Msg> {
  const definition = packageDefinition()[service];
  if (definition === undefined || 'format' in definition) {
    throw new Error(`unknown service ${service}`);
  }
  const methods = definition as unknown as Record<string, grpc.MethodDefinition<Msg, Msg> | undefined>;
  const found = methods[method];
  if (found === undefined) throw new Error(`unknown method ${service}/${method}`);
  return found;
}

/** A method's HTTP/2 path and its request and response codecs, for raw HTTP/2 clients. */
export function methodCodec(service: string, method: string): {
  readonly path: string;
  encode(request: Msg): Buffer;
  decode(bytes: Buffer): Msg;
} {
  const definition = methodDefinition(qualified(service), method);
  return {
    path: definition.path,
    encode: (request) => definition.requestSerialize(request),
    decode: (bytes) => definition.responseDeserialize(bytes),
  };
}

const codeNames = new Map<number, string>(
  Object.entries(grpc.status)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([name, code]) => [code, name]),
);

export function grpcCodeName(code: number): string {
  return codeNames.get(code) ?? `CODE_${code}`;
}

function failure(err: grpc.ServiceError): Outcome {
  return { ok: false, code: grpcCodeName(err.code), message: err.details };
}

export function isMsg(value: Wire): value is Msg {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value);
}

/** One connection to one store. Every unary RPC of KV, Lease, Cluster and Maintenance. */
export class CompatClient {
  private readonly client: grpc.Client;

  constructor(readonly endpoint: string) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    });
  }

  call(
    service: string, method: string, request: Msg, timeoutMs = 10_000, headers: Readonly<Record<string, string>> = {},
  ): Promise<Outcome> {
    const definition = methodDefinition(qualified(service), method);
    const metadata = new grpc.Metadata();
    for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        definition.path,
        definition.requestSerialize,
        definition.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + timeoutMs },
        (err, value) => {
          if (err !== null) resolve(failure(err));
          else if (value === undefined) resolve({ ok: false, code: 'EMPTY', message: 'no response' });
          else resolve({ ok: true, value });
        },
      );
    });
  }

  /** Sends `bytes` unchanged as the request message (to probe how a server treats bad input). */
  callRaw(service: string, method: string, bytes: Buffer, timeoutMs = 10_000): Promise<Outcome> {
    const definition = methodDefinition(qualified(service), method);
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        definition.path, (value: Buffer) => value, definition.responseDeserialize, bytes,
        new grpc.Metadata(), { deadline: Date.now() + timeoutMs },
        (err, value) => {
          if (err !== null) resolve(failure(err));
          else if (value === undefined) resolve({ ok: false, code: 'EMPTY', message: 'no response' });
          else resolve({ ok: true, value });
        },
      );
    });
  }

  range(request: Msg): Promise<Outcome> { return this.call('KV', 'Range', request); }
  put(request: Msg): Promise<Outcome> { return this.call('KV', 'Put', request); }
  deleteRange(request: Msg): Promise<Outcome> { return this.call('KV', 'DeleteRange', request); }
  txn(request: Msg): Promise<Outcome> { return this.call('KV', 'Txn', request); }
  compact(request: Msg): Promise<Outcome> { return this.call('KV', 'Compact', request); }
  leaseGrant(request: Msg): Promise<Outcome> { return this.call('Lease', 'LeaseGrant', request); }
  leaseRevoke(request: Msg): Promise<Outcome> { return this.call('Lease', 'LeaseRevoke', request); }
  leaseTimeToLive(request: Msg): Promise<Outcome> {
    return this.call('Lease', 'LeaseTimeToLive', request);
  }
  leaseLeases(): Promise<Outcome> { return this.call('Lease', 'LeaseLeases', {}); }
  memberList(): Promise<Outcome> { return this.call('Cluster', 'MemberList', {}); }
  memberAdd(request: Msg): Promise<Outcome> { return this.call('Cluster', 'MemberAdd', request); }
  memberRemove(request: Msg): Promise<Outcome> {
    return this.call('Cluster', 'MemberRemove', request);
  }
  memberUpdate(request: Msg): Promise<Outcome> {
    return this.call('Cluster', 'MemberUpdate', request);
  }
  memberPromote(request: Msg): Promise<Outcome> {
    return this.call('Cluster', 'MemberPromote', request);
  }
  status(): Promise<Outcome> { return this.call('Maintenance', 'Status', {}); }
  alarm(request: Msg): Promise<Outcome> { return this.call('Maintenance', 'Alarm', request); }
  defragment(): Promise<Outcome> { return this.call('Maintenance', 'Defragment', {}); }
  hash(): Promise<Outcome> { return this.call('Maintenance', 'Hash', {}); }
  hashKv(request: Msg): Promise<Outcome> { return this.call('Maintenance', 'HashKV', request); }
  moveLeader(request: Msg): Promise<Outcome> {
    return this.call('Maintenance', 'MoveLeader', request);
  }

  /** Maintenance.Snapshot: every message of the server stream, or the error that ended it. */
  snapshot(timeoutMs = 30_000): Promise<{ messages: Msg[]; error: Outcome | null }> {
    const definition = methodDefinition('etcdserverpb.Maintenance', 'Snapshot');
    const call = this.client.makeServerStreamRequest(
      definition.path, definition.requestSerialize, definition.responseDeserialize, {},
      new grpc.Metadata(), { deadline: Date.now() + timeoutMs },
    );
    const messages: Msg[] = [];
    return new Promise((resolve) => {
      call.on('data', (message: Msg) => messages.push(message));
      call.on('error', (err: grpc.ServiceError) => resolve({ messages, error: failure(err) }));
      call.on('end', () => resolve({ messages, error: null }));
    });
  }

  /** Opens a Watch stream. */
  watch(metadata: Readonly<Record<string, string>> = {}): ResponseStream {
    return this.bidi('etcdserverpb.Watch', 'Watch', metadata);
  }

  /** Opens a LeaseKeepAlive stream. */
  keepAliveStream(metadata: Readonly<Record<string, string>> = {}): ResponseStream {
    return this.bidi('etcdserverpb.Lease', 'LeaseKeepAlive', metadata);
  }

  /** One LeaseKeepAlive round trip on a fresh stream. */
  async keepAliveOnce(id: string, timeoutMs = 5_000): Promise<Outcome> {
    const stream = this.keepAliveStream();
    try {
      stream.send({ ID: id });
      const response = await stream.next(timeoutMs);
      return { ok: true, value: response };
    } catch (err) {
      const outcome = stream.failure();
      if (outcome !== null) return outcome;
      throw err;
    } finally {
      stream.end();
    }
  }

  private bidi(service: string, method: string, headers: Readonly<Record<string, string>>) {
    const definition = methodDefinition(service, method);
    const metadata = new grpc.Metadata();
    for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
    const call = this.client.makeBidiStreamRequest(
      definition.path, definition.requestSerialize, definition.responseDeserialize, metadata, {},
    );
    return new ResponseStream(call);
  }

  close(): void {
    this.client.close();
  }
}

function qualified(service: string): string {
  return service.includes('.') ? service : `etcdserverpb.${service}`;
}

/** A bidi stream whose responses are queued in arrival order and read with bounded waits. */
export class ResponseStream {
  readonly responses: Msg[] = [];
  private cursor = 0;
  private error: grpc.ServiceError | null = null;
  private isEnded = false;

  constructor(private readonly call: grpc.ClientDuplexStream<Msg, Msg>) {
    call.on('data', (message: Msg) => this.responses.push(message));
    call.on('error', (err: grpc.ServiceError) => { this.error = err; });
    call.on('end', () => { this.isEnded = true; });
  }

  send(request: Msg): void {
    this.call.write(request);
  }

  /** The next response not yet returned by next(); fails after timeoutMs. */
  async next(timeoutMs = 5_000): Promise<Msg> {
    const message = await waitFor('the next stream response', () => {
      const found = this.responses[this.cursor];
      if (found !== undefined) return found;
      if (this.error !== null) throw new Error(`stream failed: ${this.error.message}`);
      if (this.isEnded) throw new Error('stream ended');
      return undefined;
    }, timeoutMs, 5);
    this.cursor += 1;
    return message;
  }

  /** Waits until `done` holds over all responses received so far. */
  async until(what: string, done: (responses: readonly Msg[]) => boolean, timeoutMs = 10_000) {
    await waitFor(what, () => (done(this.responses) ? true : undefined), timeoutMs, 5);
  }

  failure(): Outcome | null {
    return this.error === null ? null : failure(this.error);
  }

  hasEnded(): boolean {
    return this.isEnded || this.error !== null;
  }

  end(): void {
    this.call.end();
    this.call.cancel();
  }

  /** The client's half-close only: no more requests, the stream stays open. */
  halfClose(): void {
    this.call.end();
  }
}

// ---------------------------------------------------------------------------------------------
// Accessors over decoded messages.

export function child(message: Msg | null | undefined, field: string): Msg | null {
  const value = message?.[field];
  return value !== undefined && isMsg(value) ? value : null;
}

export function list(message: Msg | null | undefined, field: string): Msg[] {
  const value = message?.[field];
  return Array.isArray(value) ? value.filter((item: Wire): item is Msg => isMsg(item)) : [];
}

export function text(message: Msg | null | undefined, field: string): string {
  const value = message?.[field];
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Buffer.isBuffer(value)) return value.toString('latin1');
  return '';
}

export function int(message: Msg | null | undefined, field: string): number {
  const value = Number(text(message, field) || '0');
  if (!Number.isSafeInteger(value)) throw new Error(`${field} is not a safe integer: ${value}`);
  return value;
}

export function bytes(message: Msg | null | undefined, field: string): Buffer {
  const value = message?.[field];
  return Buffer.isBuffer(value) ? value : Buffer.alloc(0);
}

/** The header revision of a successful outcome (0 when absent). */
export function headerRevision(outcome: Outcome): number {
  return outcome.ok ? int(child(outcome.value, 'header'), 'revision') : 0;
}

// ---------------------------------------------------------------------------------------------
// Normalisation.

/** A number compared with a tolerance by `differences`. */
export interface Approx { readonly '~': number; readonly tolerance: number }
export type Plain = null | boolean | number | string | Approx | readonly Plain[] | PlainObject;
export interface PlainObject { readonly [field: string]: Plain }

/** Bytes as text: printable ASCII verbatim, everything else (and the backslash) as \xNN. */
export function showBytes(value: Buffer): string {
  let out = '';
  for (const byte of value) {
    const printable = byte >= 0x20 && byte <= 0x7e && byte !== 0x5c;
    out += printable ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

const headerDropped = new Set(['cluster_id', 'member_id', 'raft_term']);
const leaseFields = new Set(['lease', 'ID']);
const sizeFields = new Set(['dbSize', 'dbSizeInUse']);
const indexFields = new Set(['raftIndex', 'raftAppliedIndex', 'raftTerm']);
const memberFields = new Set(['memberID', 'leader']);
const urlFields = new Set(['peerURLs', 'clientURLs']);

/**
 * Per-store normaliser. Lease IDs become L1, L2… in order of first appearance, member IDs M1…,
 * URLs U1…; headers lose cluster_id/member_id/raft_term (the revision stays); sizes, raft indexes
 * and hashes are masked; TimeToLive's TTL is compared ±1 s; arbitrary orders are sorted.
 */
export class Normalizer {
  private readonly leases = new Map<string, string>();
  private readonly members = new Map<string, string>();
  private readonly urls = new Map<string, string>();

  leaseAlias(id: string): string {
    if (id === '0') return '0';
    return alias(this.leases, id, 'L');
  }

  memberAlias(id: string): string {
    if (id === '0') return '0';
    return alias(this.members, id, 'M');
  }

  /** Registers a URL under a fixed name (e.g. this store's client URL as "client"). */
  nameUrl(url: string, name: string): void {
    this.urls.set(url, name);
  }

  outcome(rpc: string, outcome: Outcome): Plain {
    if (!outcome.ok) return { error: { code: outcome.code, message: outcome.message } };
    return this.message(rpc, outcome.value);
  }

  message(rpc: string, message: Msg): Plain {
    const plain = this.walk(rpc, message, '');
    if (rpc === 'LeaseTimeToLive' && isPlainObject(plain)) return timeToLive(plain);
    if (rpc === 'LeaseLeases' && isPlainObject(plain)) return sortedLeases(plain);
    return plain;
  }

  private walk(rpc: string, value: Wire, field: string): Plain {
    if (value === null || value === undefined) return null;
    if (Buffer.isBuffer(value)) return showBytes(value);
    if (Array.isArray(value)) {
      const items = value.map((item: Wire) => this.walk(rpc, item, field));
      return urlFields.has(field) ? items.map((url) => this.url(url)) : items;
    }
    if (isMsg(value)) return this.object(rpc, value, field);
    if (typeof value === 'string') return this.scalar(rpc, field, value);
    if (typeof value === 'number' && field === 'hash') return '<hash>';
    return value as boolean | number;
  }

  private object(rpc: string, value: Msg, field: string): PlainObject {
    const out: Record<string, Plain> = {};
    for (const [name, item] of Object.entries(value)) {
      if (field === 'header' && headerDropped.has(name)) continue;
      out[name] = this.walk(rpc, item, name);
    }
    return out;
  }

  private scalar(rpc: string, field: string, value: string): Plain {
    if (rpc.startsWith('Member') && field === 'ID') return this.memberAlias(value);
    if (leaseFields.has(field)) return this.leaseAlias(value);
    if (memberFields.has(field)) return this.memberAlias(value);
    if (sizeFields.has(field)) return '<size>';
    if (indexFields.has(field)) return '<raft>';
    if (field === 'hash') return '<hash>';
    return value;
  }

  private url(url: Plain): Plain {
    if (typeof url !== 'string') return url;
    return alias(this.urls, url, 'U');
  }
}

function alias(map: Map<string, string>, key: string, prefix: string): string {
  const known = map.get(key);
  if (known !== undefined) return known;
  const made = `${prefix}${map.size + 1}`;
  map.set(key, made);
  return made;
}

export function isPlainObject(value: Plain | undefined): value is PlainObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !isApprox(value);
}

export function isApprox(value: Plain | undefined): value is Approx {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && '~' in value;
}

function timeToLive(plain: PlainObject): PlainObject {
  const keys = plain['keys'];
  const ttl = Number(plain['TTL'] ?? 0);
  return {
    ...plain,
    TTL: ttl > 0 ? { '~': ttl, tolerance: 1 } : ttl,
    keys: Array.isArray(keys) ? [...keys].sort(compareText) : null,
  };
}

function sortedLeases(plain: PlainObject): PlainObject {
  const leases = plain['leases'];
  if (!Array.isArray(leases)) return plain;
  const sorted = [...leases].sort((a, b) => compareText(JSON.stringify(a), JSON.stringify(b)));
  return { ...plain, leases: sorted };
}

function compareText(a: Plain, b: Plain): number {
  const left = JSON.stringify(a);
  const right = JSON.stringify(b);
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Field-by-field differences between two normalised values, as "path: left ≠ right" lines. */
export function differences(left: Plain | undefined, right: Plain | undefined, path = '$') {
  const found: string[] = [];
  collect(left, right, path, found);
  return found;
}

function collect(left: Plain | undefined, right: Plain | undefined, path: string, out: string[]) {
  if (out.length >= 20) return;
  if (isApprox(left) && isApprox(right)) {
    const tolerance = Math.max(left.tolerance, right.tolerance);
    if (Math.abs(left['~'] - right['~']) > tolerance) out.push(`${path}: ${left['~']} ≠ ${right['~']}`);
    return;
  }
  if (Array.isArray(left) && Array.isArray(right)) {
    const length = Math.max(left.length, right.length);
    for (let i = 0; i < length; i++) collect(left[i], right[i], `${path}[${i}]`, out);
    return;
  }
  if (isPlainObject(left) && isPlainObject(right)) {
    const names = new Set([...Object.keys(left), ...Object.keys(right)]);
    for (const name of [...names].sort()) collect(left[name], right[name], `${path}.${name}`, out);
    return;
  }
  if (JSON.stringify(left) !== JSON.stringify(right)) {
    out.push(`${path}: ${JSON.stringify(left)} ≠ ${JSON.stringify(right)}`);
  }
}
