// Plain HTTP/1.1 against a store's client port, as curl would send it: for the JSON gateway,
// /metrics and its streams. Every request has a deadline; every stream is closed by its caller.
import { request, type ClientRequest } from 'node:http';

export interface HttpAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const REQUEST_TIMEOUT_MS = 10_000;

function hostPort(endpoint: string): { host: string; port: number } {
  const [host = '127.0.0.1', port = '0'] = endpoint.split(':');
  return { host, port: Number(port) };
}

/** Sends `body` (exactly as given, so malformed JSON stays malformed) and reads the whole answer. */
export function httpCall(
  endpoint: string,
  method: string,
  path: string,
  body = '',
  headers: Readonly<Record<string, string>> = {},
): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { ...hostPort(endpoint), path, method, headers, timeout: REQUEST_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** A streaming answer read line by line (the gateway writes one JSON object per line). */
export interface HttpStream {
  readonly status: () => number;
  readonly lines: () => readonly string[];
  readonly isEnded: () => boolean;
  close(): void;
}

/** Posts `body` and keeps reading; the request body ends at once, as with `curl -d`. */
export function httpStream(endpoint: string, path: string, body: string): HttpStream {
  const lines: string[] = [];
  let pending = '';
  let statusCode = 0;
  let ended = false;
  const req: ClientRequest = request({ ...hostPort(endpoint), path, method: 'POST' }, (res) => {
    statusCode = res.statusCode ?? 0;
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      pending += chunk;
      const parts = pending.split('\n');
      pending = parts.pop() ?? '';
      lines.push(...parts.filter((line) => line !== ''));
    });
    res.on('end', () => {
      if (pending !== '') lines.push(pending);
      ended = true;
    });
    res.on('error', () => {
      ended = true;
    });
  });
  req.on('error', () => {
    ended = true;
  });
  req.end(body);
  return {
    status: () => statusCode,
    lines: () => lines,
    isEnded: () => ended,
    close: () => req.destroy(),
  };
}
