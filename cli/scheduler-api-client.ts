/**
 * The CLI's client for the master HTTP API. Any master (leader or standby) serves the API.
 * ETCRON_API / --api names one or more seed masters; the first request of an invocation asks a
 * seed for every live master (GET /v1/masters), then reads rotate over them and every request
 * fails over to the next master when one cannot be reached.
 */
import { MasterTargets } from './master-targets.js';

export const DEFAULT_API_URL = 'http://127.0.0.1:7070';
/** An unreachable master must fail the command within a few seconds, not hang. */
export const API_CONNECT_TIMEOUT_MS = 5_000;
export const API_REQUEST_TIMEOUT_MS = 15_000;

/** An error the CLI prints as one line and exits non-zero on; no stack trace. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** A refusal from the API, with its stable code (e.g. ETCRON_JOB_EXISTS). */
export class ApiRefusal extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: readonly { field: string; message: string }[],
  ) {
    super(message, status === 404 ? 3 : 2);
  }
}

export function parseApiUrls(value: string | undefined): string[] {
  const raw = value ?? process.env['ETCRON_API'] ?? DEFAULT_API_URL;
  const urls = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => (/^https?:\/\//.test(s) ? s : `http://${s}`).replace(/\/+$/, ''));
  if (urls.length === 0) throw new CliError('no master API URL given (--api or ETCRON_API)');
  for (const url of urls) {
    try {
      new URL(url);
    } catch {
      throw new CliError(`invalid master API URL: ${url}`);
    }
  }
  return urls;
}

/** How the CLI proves who it is to a master whose API requires it. */
export type ApiCredentials =
  | { readonly kind: 'basic'; readonly user: string; readonly password: string }
  | { readonly kind: 'bearer'; readonly token: string };

/** A live master as GET /v1/masters lists it. */
export interface MasterListing {
  readonly id: string;
  readonly apiUrl: string;
  readonly isLeader: boolean;
  readonly startedAt: string;
  readonly leaderSince: string | null;
}

export interface ApiClientOptions {
  /** Masters known before asking (--api / ETCRON_API), tried in order for the discovery. */
  readonly seeds: readonly string[];
  readonly credentials?: ApiCredentials;
  /** False: use only the seeds, in order (a request to one named master). */
  readonly discover?: boolean;
}

type Discovery = { readonly targets: MasterTargets; readonly masters: readonly MasterListing[] | undefined };

export class ApiClient {
  private readonly options: ApiClientOptions;
  private discovery: Promise<Discovery> | undefined;

  constructor(options: ApiClientOptions | readonly string[]) {
    this.options = isStringList(options) ? { seeds: options } : options;
  }

  async get(path: string): Promise<unknown> {
    return this.json('GET', path, undefined);
  }
  async post(path: string, body?: unknown): Promise<unknown> {
    return this.json('POST', path, body);
  }
  async put(path: string, body: unknown): Promise<unknown> {
    return this.json('PUT', path, body);
  }
  async delete(path: string): Promise<unknown> {
    return this.json('DELETE', path, undefined);
  }

  /** The live masters, as one of them listed them; undefined when no master could list them. */
  async masters(): Promise<readonly MasterListing[] | undefined> {
    return (await this.discovered()).masters;
  }

  /** A GET to one given master only (no discovery, no failover), with the same credentials. */
  async getFrom(baseUrl: string, path: string): Promise<unknown> {
    const response = await this.sendTo([baseUrl], 'GET', path, undefined, true);
    if (!response.ok) await this.refuse(response);
    return parseBody(await response.text());
  }

  /** Streams a plain-text response body into `sink` as it arrives (logs --follow). */
  async stream(path: string, sink: (chunk: string) => void): Promise<void> {
    const response = await this.send('GET', path, undefined, false);
    if (!response.ok) await this.refuse(response);
    const body = response.body;
    if (body === null) return;
    const decoder = new TextDecoder();
    for await (const chunk of body) sink(decoder.decode(chunk as Uint8Array, { stream: true }));
    const rest = decoder.decode();
    if (rest.length > 0) sink(rest);
  }

  private async json(method: string, path: string, body: unknown): Promise<unknown> {
    const response = await this.send(method, path, body, true);
    if (!response.ok) await this.refuse(response);
    return parseBody(await response.text());
  }

  private async refuse(response: Response): Promise<never> {
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new CliError(`master answered ${response.status}: ${text.slice(0, 200)}`);
    }
    const error = (parsed as { error?: { code?: unknown; message?: unknown; fields?: unknown } })
      .error;
    const message = typeof error?.message === 'string' ? error.message : text.slice(0, 200);
    const code = typeof error?.code === 'string' ? error.code : 'UNKNOWN';
    const fields = Array.isArray(error?.fields)
      ? (error.fields as { field: string; message: string }[])
      : [];
    throw new ApiRefusal(response.status, code, message, fields);
  }

  /** Once per invocation; every later request uses the list it found. */
  private discovered(): Promise<Discovery> {
    this.discovery ??= this.discover();
    return this.discovery;
  }

  private async discover(): Promise<Discovery> {
    const seeds = new MasterTargets(this.options.seeds);
    if (this.options.discover === false) return { targets: seeds, masters: undefined };
    const response = await this.sendAcross(seeds, seeds.forWrite(), 'GET', '/v1/masters', undefined, true);
    // Credentials missing or wrong: say so now rather than after trying every master.
    if (response.status === 401) await this.refuse(response);
    const masters = response.ok ? parseMasters(parseBody(await response.text())) : undefined;
    if (masters === undefined || masters.length === 0) {
      // A master without /v1/masters (an older version) or a failing store: the seeds still serve.
      if (!response.ok) await response.body?.cancel();
      return { targets: seeds, masters };
    }
    // Seeds first: writes go to the master the user named while it answers, and an advertised
    // URL may not resolve from where the CLI runs (a compose service name seen from the host).
    const urls = [...this.options.seeds, ...masters.map((m) => m.apiUrl)];
    return { targets: new MasterTargets(urls, seeds.deadOnes()), masters };
  }

  private async send(method: string, path: string, body: unknown, isBounded: boolean): Promise<Response> {
    const { targets } = await this.discovered();
    const urls = method === 'GET' ? targets.forRead() : targets.forWrite();
    return this.sendAcross(targets, urls, method, path, body, isBounded);
  }

  private sendTo(urls: readonly string[], method: string, path: string, body: unknown, isBounded: boolean): Promise<Response> {
    return this.sendAcross(new MasterTargets(urls), urls, method, path, body, isBounded);
  }

  /**
   * Tries each URL in turn. Only failures to connect move on to the next master: once a master
   * answered (even with an error), its answer stands, so a write is never sent twice.
   */
  private async sendAcross(
    targets: MasterTargets,
    urls: readonly string[],
    method: string,
    path: string,
    body: unknown,
    isBounded: boolean,
  ): Promise<Response> {
    const failures: string[] = [];
    for (const base of urls) {
      const connect = new AbortController();
      const timer = setTimeout(() => connect.abort(), API_CONNECT_TIMEOUT_MS);
      const signals = [connect.signal];
      if (isBounded) signals.push(AbortSignal.timeout(API_REQUEST_TIMEOUT_MS));
      try {
        const init: RequestInit = {
          method,
          signal: AbortSignal.any(signals),
          headers: { accept: 'application/json', 'content-type': 'application/json', ...this.authorization() },
        };
        if (body !== undefined) init.body = JSON.stringify(body);
        // fetch resolves once headers arrive; clear the connect timer then, not at body end.
        const response = await fetch(`${base}${path}`, init);
        clearTimeout(timer);
        return response;
      } catch (err) {
        clearTimeout(timer);
        const reason = describeFetchError(err);
        // A write that timed out may have been applied: do not send it to another master.
        if (method !== 'GET' && !isNotSent(err)) {
          throw new CliError(`master ${base} did not answer (${reason}); the ${method} may or may not have been applied`);
        }
        targets.markDead(base);
        failures.push(`${base}: ${reason}`);
      }
    }
    throw new CliError(`cannot reach the master API (${failures.join('; ')})`);
  }

  private authorization(): Record<string, string> {
    const credentials = this.options.credentials;
    if (credentials === undefined) return {};
    if (credentials.kind === 'bearer') return { authorization: `Bearer ${credentials.token}` };
    const basic = Buffer.from(`${credentials.user}:${credentials.password}`, 'utf8').toString('base64');
    return { authorization: `Basic ${basic}` };
  }
}

function isStringList(value: ApiClientOptions | readonly string[]): value is readonly string[] {
  return Array.isArray(value);
}

function parseBody(text: string): unknown {
  return text.length === 0 ? undefined : (JSON.parse(text) as unknown);
}

/** The list from GET /v1/masters, or undefined when the answer is not one. */
function parseMasters(body: unknown): MasterListing[] | undefined {
  const list = (body as { masters?: unknown } | undefined)?.masters;
  if (!Array.isArray(list)) return undefined;
  return list.filter((m): m is MasterListing => {
    const v = m as Record<string, unknown> | null;
    return v !== null && typeof v === 'object' && typeof v['id'] === 'string' && typeof v['apiUrl'] === 'string'
      && /^https?:\/\//.test(v['apiUrl']);
  });
}

/** True when the request certainly never reached a server (connection refused or not found). */
function isNotSent(err: unknown): boolean {
  const cause = err instanceof Error ? (err as { cause?: unknown }).cause : undefined;
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  return code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'EAI_AGAIN';
}

function describeFetchError(err: unknown): string {
  if (err instanceof Error) {
    if (err.name === 'AbortError' || err.name === 'TimeoutError') return 'timed out';
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as { code?: unknown }).code;
      return typeof code === 'string' ? code : cause.message;
    }
    return err.message;
  }
  return String(err);
}
