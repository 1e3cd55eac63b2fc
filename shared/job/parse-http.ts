import { Checker, isRecord } from './checker.js';
import { HTTP_METHODS, JOB_LIMITS, type HttpMethod, type HttpRequestSpec } from './spec.js';

const HTTP_FIELDS = ['method', 'url', 'headers', 'body', 'expectStatus'] as const;
/** RFC 9110 token characters: what a header name may be made of. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the request itself owns: a value given here would contradict what is sent. */
const RESERVED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'keep-alive']);
/** The worker sets these on every request (fence, job, slot ...): a job may not forge them. */
export const ETCRON_HEADER_PREFIX = 'x-etcron-';

/** Validates a job's `http` object; problems go to the checker, under `http.`. */
export function parseHttpRequest(c: Checker, value: unknown): HttpRequestSpec | undefined {
  if (!isRecord(value)) return c.fail('http', 'must be an object with at least a url');
  c.strict(value, HTTP_FIELDS, 'http.');
  const method = parseMethod(c, value['method']);
  const url = parseUrl(c, value['url']);
  const headers = parseHeaders(c, value['headers']);
  const body = value['body'];
  if (body !== undefined) {
    if (typeof body !== 'string') c.fail('http.body', 'must be a string');
    else if (Buffer.byteLength(body) > JOB_LIMITS.httpBodyBytesMax) c.fail('http.body', `is longer than ${JOB_LIMITS.httpBodyBytesMax} bytes`);
    else if (method === 'GET' || method === 'HEAD') c.fail('http.body', `a ${method} request carries no body`);
  }
  const expectStatus = parseExpectStatus(c, value['expectStatus']);
  if (method === undefined || url === undefined || headers === undefined || expectStatus === null) return undefined;
  return {
    method, url, headers,
    ...(typeof body === 'string' ? { body } : {}),
    ...(expectStatus === undefined ? {} : { expectStatus }),
  };
}

function parseMethod(c: Checker, value: unknown): HttpMethod | undefined {
  if (value === undefined) return 'GET';
  const upper = typeof value === 'string' ? value.toUpperCase() : undefined;
  const method = HTTP_METHODS.find((m) => m === upper);
  return method ?? c.fail('http.method', `must be one of ${HTTP_METHODS.join(', ')} (got ${JSON.stringify(value)})`);
}

function parseUrl(c: Checker, value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return c.fail('http.url', 'is required: an http:// or https:// URL');
  if (Buffer.byteLength(value) > JOB_LIMITS.httpUrlBytesMax) return c.fail('http.url', `is longer than ${JOB_LIMITS.httpUrlBytesMax} bytes`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return c.fail('http.url', `is not a URL (got ${JSON.stringify(value)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return c.fail('http.url', `must be http:// or https:// (got ${url.protocol})`);
  if (url.username !== '' || url.password !== '') {
    // Credentials in a URL end up in logs and in `job get`; a header keeps them in one place.
    return c.fail('http.url', 'must not carry credentials; send an Authorization header instead');
  }
  return url.toString();
}

function parseHeaders(c: Checker, value: unknown): Record<string, string> | undefined {
  if (value === undefined) return {};
  if (!isRecord(value)) return c.fail('http.headers', 'must be an object of header names to string values');
  const headers: Record<string, string> = {};
  let bytes = 0;
  let isValid = true;
  for (const [name, v] of Object.entries(value)) {
    const lower = name.toLowerCase();
    const fail = (reason: string): void => { c.fail(`http.headers.${name}`, reason); isValid = false; };
    if (!HEADER_NAME.test(name)) fail('is not a valid header name');
    else if (RESERVED_HEADERS.has(lower)) fail('is set by the request itself');
    else if (lower.startsWith(ETCRON_HEADER_PREFIX)) fail(`${ETCRON_HEADER_PREFIX}* headers are set by the worker`);
    else if (lower in headers) fail('is given twice (names are case-insensitive)');
    else if (typeof v !== 'string' || /[\r\n\0]/.test(v)) fail('must be a string without line breaks');
    else headers[lower] = v;
    bytes += Buffer.byteLength(name) + (typeof v === 'string' ? Buffer.byteLength(v) : 0);
  }
  if (bytes > JOB_LIMITS.httpHeadersBytesMax) return c.fail('http.headers', `are larger than ${JOB_LIMITS.httpHeadersBytesMax} bytes`);
  return isValid ? headers : undefined;
}

/** undefined: any 2xx; null: invalid (reported). */
function parseExpectStatus(c: Checker, value: unknown): readonly number[] | undefined | null {
  if (value === undefined) return undefined;
  const list = Array.isArray(value) ? value : [value];
  const isStatus = (s: unknown): s is number => typeof s === 'number' && Number.isInteger(s) && s >= 100 && s <= 599;
  if (list.length === 0 || list.length > 64 || !list.every(isStatus)) {
    c.fail('http.expectStatus', 'must be a status (100-599) or a list of them');
    return null;
  }
  return [...new Set(list)].sort((a, b) => a - b);
}
