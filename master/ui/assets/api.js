// The master's JSON API, same origin. Errors carry the API's stable code and message.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function request(method, path, body) {
  const init = { method, headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let data;
  try {
    data = text.length > 0 ? JSON.parse(text) : undefined;
  } catch {
    const shown = `master answered ${response.status}: ${text.slice(0, 200)}`;
    throw new ApiError(response.status, 'UNKNOWN', shown);
  }
  if (!response.ok) {
    const { code = 'UNKNOWN', message = response.statusText } = data?.error ?? {};
    throw new ApiError(response.status, code, message);
  }
  return data;
}

const job = (name) => `/v1/jobs/${encodeURIComponent(name)}`;
const at = (rev, extra = {}) => {
  const params = new URLSearchParams();
  if (rev !== null && rev !== undefined) params.set('rev', String(rev));
  for (const [k, v] of Object.entries(extra)) params.set(k, String(v));
  const text = params.toString();
  return text === '' ? '' : `?${text}`;
};

export const api = {
  status: () => request('GET', '/v1/status'),
  overview: () => request('GET', '/v1/overview?next=3'),
  job: (name, rev) => request('GET', `${job(name)}${at(rev)}`),
  history: (name, rev, limit = 50) => request('GET', `${job(name)}/history${at(rev, { limit })}`),
  run: (name, slot, rev) =>
    request('GET', `${job(name)}/runs/${encodeURIComponent(slot)}${at(rev)}`),
  timeline: (name) => request('GET', `${job(name)}/timeline`),
  alerts: (name) => request('GET', `${job(name)}/alerts`),
  locks: (rev) => request('GET', `/v1/locks${at(rev)}`),
  workers: (rev) => request('GET', `/v1/workers${at(rev)}`),
  pause: (name) => request('POST', `${job(name)}/pause`),
  resume: (name) => request('POST', `${job(name)}/resume`),
  runNow: (name) => request('POST', `${job(name)}/run`),
  kill: (name, run) => {
    const which = run === undefined ? '' : `?run=${encodeURIComponent(run)}`;
    return request('POST', `${job(name)}/kill${which}`);
  },

  /** Streams a live run's output (the stored tail first, then what follows) until it ends. */
  async follow(name, slot, onText, signal) {
    const path = `${job(name)}/logs?run=${encodeURIComponent(slot)}&follow=1`;
    const response = await fetch(path, { signal });
    if (!response.ok) {
      throw new ApiError(response.status, 'UNKNOWN', `follow failed: ${response.status}`);
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onText(value);
    }
  },
};
