import { Agent as HttpAgent, request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { urlToHttpOptions } from 'node:url';
import type { Clock, Timer } from '../../shared/clock.js';
import type { Logger } from '../../shared/log.js';
import type { HttpRequestSpec } from '../../shared/job/spec.js';
import { OutputTail } from './output-tail.js';
import type { ProcessExit, RunningProcess, StopCause } from './process-group.js';

export interface HttpRunSpec {
  readonly request: HttpRequestSpec;
  /** The worker's own headers (fence, job, slot ...), set over the job's. */
  readonly runHeaders: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly outputTailBytesMax: number;
}

/**
 * Connections are kept alive and shared by every HTTP job of this worker: a new TCP (and TLS)
 * handshake per start would cost more than the request. The socket cap bounds what a burst of
 * slots opens against one target.
 */
const SOCKETS_PER_HOST_MAX = 256;
const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: SOCKETS_PER_HOST_MAX });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: SOCKETS_PER_HOST_MAX });

/**
 * The run's identity as request headers, from the variables a command run gets: ETCRON_FENCE
 * becomes X-Etcron-Fence, and so on. The target should refuse a fence lower than one it has seen
 * for the job: that run was superseded (its worker lost the lock).
 */
export function runHeadersFrom(env: Readonly<Record<string, string>>): Record<string, string> {
  const headers: Record<string, string> = {};
  const names: readonly [string, string][] = [
    ['ETCRON_JOB', 'x-etcron-job'], ['ETCRON_SLOT', 'x-etcron-slot'], ['ETCRON_RUN_ID', 'x-etcron-run-id'],
    ['ETCRON_FENCE', 'x-etcron-fence'], ['ETCRON_WORKER', 'x-etcron-worker'], ['ETCRON_ATTEMPT', 'x-etcron-attempt'],
  ];
  for (const [variable, header] of names) {
    const value = env[variable];
    if (value !== undefined) headers[header] = value;
  }
  return headers;
}

/** Any 2xx when the job names no statuses. */
function isExpected(status: number, expected: readonly number[] | undefined): boolean {
  return expected === undefined ? status >= 200 && status <= 299 : expected.includes(status);
}

function describeExpected(expected: readonly number[] | undefined): string {
  return expected === undefined ? '2xx' : expected.join(' or ');
}

/** What a request spec resolves to once: parsing the URL per start cost more than the send. */
interface PreparedTarget {
  readonly send: typeof httpRequest;
  readonly options: RequestOptions;
  readonly origin: string;
  readonly body: Buffer | undefined;
}

/** Keyed by the job's spec object, which lives until the job is edited; then it is collected. */
const preparedTargets = new WeakMap<HttpRequestSpec, PreparedTarget>();

function prepareTarget(request: HttpRequestSpec): PreparedTarget {
  const known = preparedTargets.get(request);
  if (known !== undefined) return known;
  const url = new URL(request.url);
  const secure = url.protocol === 'https:';
  const prepared: PreparedTarget = {
    send: secure ? httpsRequest : httpRequest,
    // The URL as request options (host, port, path, auth), as node:http derives them from a URL.
    options: { ...urlToHttpOptions(url), method: request.method, agent: secure ? httpsAgent : httpAgent },
    origin: url.origin,
    body: request.body === undefined ? undefined : Buffer.from(request.body),
  };
  preparedTargets.set(request, prepared);
  return prepared;
}

/**
 * Makes the job's request in this process and presents it as a run: `exited` settles when the
 * response body has been read (its tail kept as the run's output, after the status line) or the
 * request failed; stop() destroys it. A stopped or timed-out request may still have reached the
 * target: the fence header is how the target tells a stale run from the current one. `logger` is
 * asked for only when there is something to log (a child logger per start is measurable at
 * 1,000 starts/s).
 */
export function startHttpRequest(spec: HttpRunSpec, clock: Clock, logger: () => Logger): RunningProcess {
  const tail = new OutputTail(spec.outputTailBytesMax);
  let stopCause: StopCause | undefined;
  let timer: Timer | undefined;
  let settle: (exit: ProcessExit) => void = () => undefined;
  const exited = new Promise<ProcessExit>((resolve) => { settle = resolve; });
  let isSettled = false;
  const end = (outcome: { failure?: string; httpStatus?: number }): void => {
    if (isSettled) return;
    isSettled = true;
    timer?.cancel();
    settle({
      exitCode: null, signal: null, outputTail: tail.text(), inProcess: outcome,
      ...(stopCause === undefined ? {} : { stopCause }),
    });
  };

  const { request } = spec;
  const target = prepareTarget(request);
  const { body } = target;
  const headers: Record<string, string> = {
    ...request.headers, ...spec.runHeaders,
    ...(body === undefined ? {} : { 'content-length': String(body.length) }),
  };
  // No AbortSignal: stop() destroys the request, which costs nothing until it is needed.
  const outgoing = target.send({ ...target.options, headers }, (response: IncomingMessage) => {
    const status = response.statusCode ?? 0;
    tail.push(Buffer.from(`HTTP/${response.httpVersion} ${status} ${response.statusMessage ?? ''}\n`));
    response.on('data', (chunk: Buffer) => tail.push(chunk));
    response.on('error', (err: Error) => end({ failure: `response failed: ${err.message}`, httpStatus: status }));
    response.on('close', () => {
      if (!response.complete) end({ failure: 'response cut short by the connection', httpStatus: status });
    });
    response.on('end', () => end(isExpected(status, request.expectStatus)
      ? { httpStatus: status }
      : { failure: `HTTP status ${status} (expected ${describeExpected(request.expectStatus)})`, httpStatus: status }));
  });
  outgoing.on('error', (err: NodeJS.ErrnoException) => {
    const what = stopCause === undefined ? `request failed: ${err.code ?? err.message}` : `request aborted (${stopCause})`;
    if (stopCause === undefined) logger().debug({ err, url: target.origin }, 'http job request failed');
    end({ failure: what });
  });
  outgoing.end(body);

  const stop = (cause: StopCause): void => {
    if (isSettled || stopCause !== undefined) return;
    stopCause = cause;
    outgoing.destroy();
    // A stop after the response ended changes nothing; one before it ends the run now.
    end({ failure: `request aborted (${cause})` });
  };
  if (spec.timeoutMs !== undefined) timer = clock.setTimer(spec.timeoutMs, () => stop('timeout'));
  return { pid: undefined, exited, outputTail: () => tail.text(), stop: (cause) => stop(cause) };
}
