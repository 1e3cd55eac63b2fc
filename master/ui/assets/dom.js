// DOM building without innerHTML: every string becomes a text node or an attribute value, so job
// names, commands and outputs (user data) are always shown as text, never parsed as HTML.

/** h('a', { href: '#/', class: 'x', onclick: fn }, 'text', child, [more]) */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    const isHandler = key.startsWith('on') && typeof value === 'function';
    if (isHandler) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  appendChildren(el, children);
  return el;
}

export function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  appendChildren(el, children);
}

/** "2026-12-05 06:01:02" (today: "06:01:02") in the browser's time zone; ISO in the title. */
export function timeCell(ms) {
  if (ms === undefined || ms === null) return h('span', { class: 'muted' }, '—');
  const date = new Date(ms);
  return h('time', { datetime: date.toISOString(), title: date.toISOString() },
    formatLocal(date), h('span', { class: 'muted rel' }, relative(ms)));
}

export function formatLocal(date) {
  const pad = (n) => String(n).padStart(2, '0');
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return date.toDateString() === new Date().toDateString() ? time : `${day} ${time}`;
}

export function relative(ms) {
  const seconds = Math.round((ms - Date.now()) / 1000);
  const size = Math.abs(seconds);
  if (size === 0) return 'now';
  const text = size < 60 ? `${size} s` : size < 3600 ? `${Math.round(size / 60)} min`
    : size < 86400 ? `${Math.round(size / 3600)} h` : `${Math.round(size / 86400)} d`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

export function duration(fromMs, toMs) {
  if (fromMs === undefined || toMs === undefined) return '—';
  const ms = toMs - fromMs;
  if (ms < 1000) return `${ms} ms`;
  return ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

const STATE_TONES = {
  succeeded: 'ok', running: 'live', claimed: 'live', failed: 'bad', timeout: 'bad', lost: 'bad',
  killed: 'warn', missed: 'warn', skipped: 'quiet', paused: 'quiet', active: 'ok', invalid: 'bad',
};

/** A table head row of column titles. */
export function headRow(titles) {
  return h('thead', {}, h('tr', {}, titles.map((t) => h('th', { scope: 'col' }, t))));
}

export function badge(state) {
  return h('span', { class: `badge badge-${STATE_TONES[state] ?? 'quiet'}` }, state);
}
