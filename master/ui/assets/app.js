import { api } from './api.js';
import { badge, duration, h, headRow, replace, timeCell } from './dom.js';

// A small single-page app over the master's API: #/ jobs, #/job/<name>, #/job/<name>/run/<slot>,
// #/cluster. Live views poll every 2 s; a view pinned to a revision shows the store as it was then.

const POLL_MS = 2_000;
const main = document.getElementById('main');
const notice = document.getElementById('notice');
const masterStatus = document.getElementById('master-status');
let page;
let latestRevision = 0;

function say(text, tone = 'info') {
  notice.className = `notice notice-${tone}`;
  replace(notice, text);
}

function errorText(err) {
  if (err?.code && err.code !== 'UNKNOWN') return `${err.message} (${err.code})`;
  return String(err?.message ?? err);
}

/** Renders `node` into `container`, keeping keyboard focus on the element with the same key. */
function render(container, ...nodes) {
  const key = document.activeElement?.dataset?.key;
  replace(container, ...nodes);
  if (key === undefined) return;
  const again = [...container.querySelectorAll('[data-key]')].find((el) => el.dataset.key === key);
  again?.focus();
}

/** Calls load now and every interval until stopped; `now()` reloads at once (after an action). */
function poller(load, isLive = () => true, intervalMs = () => POLL_MS) {
  let timer;
  let stopped = false;
  const tick = async () => {
    clearTimeout(timer);
    try {
      await load();
    } catch (err) {
      say(errorText(err), 'error');
    }
    if (!stopped && isLive()) timer = setTimeout(tick, intervalMs());
  };
  void tick();
  return { stop: () => { stopped = true; clearTimeout(timer); }, now: () => void tick() };
}

async function refreshStatus() {
  try {
    const status = await api.status();
    latestRevision = status.revision;
    const leader = status.leader?.id ?? 'none';
    const self = `master ${status.master}${status.isLeader ? ' (leader)' : ''}`;
    replace(masterStatus, `${self} · leader ${leader} · revision ${status.revision}`);
    return status;
  } catch (err) {
    replace(masterStatus, 'master unreachable');
    throw err;
  }
}

async function act(label, action, after) {
  try {
    await action();
    say(`${label}: done`, 'ok');
  } catch (err) {
    say(`${label} failed: ${errorText(err)}`, 'error');
  }
  after();
}

const ttl = (seconds) => (seconds === null || seconds === undefined ? '—' : `${seconds} s`);
const section = (id, title, ...content) =>
  h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...content);

const jobHref = (name) => `#/job/${encodeURIComponent(name)}`;
const runHref = (name, slot) => `${jobHref(name)}/run/${encodeURIComponent(slot)}`;

function actionButtons(name, paused, reload, liveLocks = 0) {
  return h('div', { class: 'actions', role: 'group', 'aria-label': `Actions for ${name}` },
    paused
      ? h('button', { type: 'button', 'data-key': `resume:${name}`,
        onclick: () => act(`Resume ${name}`, () => api.resume(name), reload) }, 'Resume')
      : h('button', { type: 'button', 'data-key': `pause:${name}`,
        onclick: () => act(`Pause ${name}`, () => api.pause(name), reload) }, 'Pause'),
    h('button', { type: 'button', 'data-key': `run:${name}`,
      onclick: () => act(`Run ${name} now`, () => api.runNow(name), reload) }, 'Run now'),
    liveLocks > 0
      ? h('button', { type: 'button', class: 'danger', 'data-key': `kill:${name}`,
        onclick: () => act(`Kill ${name}`, () => api.kill(name), reload) }, 'Kill')
      : null);
}

// ---- Jobs -------------------------------------------------------------------------------------

/** The overview reads each job's latest run: with many jobs, poll less often. */
const overviewPollMs = (jobs) => Math.max(POLL_MS, jobs * 10);

function jobsPage() {
  const body = h('div', { class: 'card' });
  let jobCount = 0;
  replace(main, h('h1', {}, 'Jobs'), body);
  const poll = poller(async () => {
    await refreshStatus();
    const data = await api.overview();
    jobCount = data.jobs.length;
    if (data.jobs.length === 0) {
      const example = 'etcron job add NAME --schedule … --command …';
      render(body, h('p', {}, 'No jobs yet. Add one with ', h('code', {}, example), '.'));
      return;
    }
    render(body, h('table', {},
      h('caption', { class: 'sr-only' }, 'Jobs: state, schedule, next slots and last run'),
      headRow(['Job', 'State', 'Schedule', 'Next slots', 'Last run', 'Actions']),
      h('tbody', {}, data.jobs.map((job) => jobRow(job, () => poll.now())))),
    data.truncated
      ? h('p', { class: 'muted' }, `Showing the first ${data.jobs.length} jobs.`)
      : null);
  }, () => true, () => overviewPollMs(jobCount));
  return { dispose: poll.stop };
}

function jobRow(job, reload) {
  const spec = job.spec;
  const state = spec === null ? 'invalid' : spec.paused ? 'paused' : 'active';
  const last = job.lastRun;
  return h('tr', {},
    h('th', { scope: 'row' }, h('a', { href: jobHref(job.name) }, job.name)),
    h('td', {}, badge(state), job.invalid ? h('div', { class: 'muted small' }, job.invalid) : null),
    h('td', {}, spec
      ? [h('code', {}, spec.schedule), h('div', { class: 'muted small' }, spec.timezone)]
      : '—'),
    h('td', { class: spec?.paused ? 'dim' : '' }, job.nextSlots.length === 0 ? '—'
      : h('ul', { class: 'plain' },
        job.nextSlots.map((iso) => h('li', {}, timeCell(Date.parse(iso)))))),
    h('td', {}, last === null ? h('span', { class: 'muted' }, 'never')
      : [badge(last.state), ' ', h('a', { href: runHref(job.name, last.slot) },
        timeCell(last.endedAtMs ?? last.startedAtMs ?? Date.parse(last.slot)))]),
    h('td', {}, spec ? actionButtons(job.name, spec.paused, reload) : null));
}

// ---- Revision control -------------------------------------------------------------------------

/**
 * A slider over store revisions, from `min` to the latest. At the latest it is live (and the page
 * polls); anywhere before, the page shows the store as it was at that revision (MVCC reads).
 */
function revisionControl(onChange) {
  let pinned = null;
  let debounce;
  const id = `rev-${Math.random().toString(36).slice(2)}`;
  const slider = h('input', { type: 'range', id, min: 1, max: 1, value: 1, step: 1 });
  const number = h('input', {
    type: 'number', min: 1, max: 1, value: 1, class: 'revnum', 'aria-label': 'Revision number',
  });
  const state = h('output', { for: id, class: 'revstate', 'aria-live': 'polite' });
  const live = h('button', { type: 'button', onclick: () => choose(null) }, 'Back to live');
  const choose = (rev) => {
    const max = Number(slider.max);
    pinned = rev === null || rev >= max ? null : Math.max(Number(slider.min), rev);
    show();
    onChange(pinned);
  };
  const show = () => {
    const value = pinned ?? Number(slider.max);
    slider.value = String(value);
    number.value = String(value);
    const text = pinned === null ? `revision ${value}, live` : `revision ${value}`;
    slider.setAttribute('aria-valuetext', text);
    replace(state, pinned === null ? `live (revision ${value})` : `as of revision ${value}`);
    live.disabled = pinned === null;
    element.classList.toggle('pinned', pinned !== null);
  };
  slider.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => choose(Number(slider.value)), 150);
  });
  number.addEventListener('change', () => choose(Number(number.value)));
  const element = h('div', { class: 'revbar' },
    h('label', { for: id }, 'Revision'), slider, number, state, live);
  return {
    element,
    pinned: () => pinned,
    set: (rev) => choose(rev),
    focus: () => slider.focus(),
    /** New bounds; a live control follows the latest revision. */
    bounds(min, max) {
      slider.min = String(min);
      number.min = String(min);
      slider.max = String(max);
      number.max = String(max);
      show();
    },
  };
}

// ---- One job ----------------------------------------------------------------------------------

function jobPage(name) {
  const head = h('div');
  const control = revisionControl(() => poll.now());
  const lock = h('div');
  const history = h('div');
  const timeline = h('div');
  const alerts = h('div');
  replace(main,
    h('p', {}, h('a', { href: '#/' }, '← Jobs')),
    head,
    h('section', { class: 'card', 'aria-labelledby': 'at-rev' },
      h('h2', { id: 'at-rev' }, 'Lock and history at a revision'),
      h('p', { class: 'muted' },
        'Move the slider back to see who held the lock and what the history said then.'),
      control.element,
      h('h3', {}, 'Lock owner'), lock,
      h('h3', {}, 'Runs'), history),
    h('section', { class: 'card', 'aria-labelledby': 'timeline-h' },
      h('h2', { id: 'timeline-h' }, 'Lock timeline'), timeline),
    h('section', { class: 'card', 'aria-labelledby': 'alerts-h' },
      h('h2', { id: 'alerts-h' }, 'Alerts'), alerts));
  let createRevision = 1;
  let timelineLoaded = false;

  const poll = poller(async () => {
    const status = await refreshStatus();
    const rev = control.pinned();
    const jobAt = await api.job(name, rev)
      .catch((err) => (err.status === 404 ? null : Promise.reject(err)));
    if (rev === null && jobAt === null) {
      render(head, h('h1', {}, name), h('p', {}, 'No such job.'));
      return;
    }
    if (rev === null) {
      createRevision = jobAt.job.createRevision;
      const locks = (await api.locks()).locks.filter((l) => l.job === name);
      render(head, jobHeader(jobAt.job, () => poll.now(), locks.length));
    }
    control.bounds(createRevision, status.revision);
    if (jobAt === null) {
      render(lock, h('p', {}, `The job did not exist at revision ${rev}.`));
      render(history, '');
    } else {
      const [locks, runs] = await Promise.all([api.locks(rev), api.history(name, rev)]);
      render(lock, lockTable(locks.locks.filter((l) => l.job === name)));
      render(history, historyTable(name, runs.runs, rev));
    }
    if (rev === null && jobAt?.job.spec?.alerts !== undefined) {
      render(alerts, alertTable((await api.alerts(name)).alerts));
    } else if (rev === null) {
      render(alerts, h('p', { class: 'muted' }, 'This job sends no alerts.'));
    }
    if (!timelineLoaded) {
      timelineLoaded = true;
      loadTimeline();
    }
  }, () => control.pinned() === null);

  const loadTimeline = async () => {
    render(timeline, h('p', { class: 'muted' }, 'Replaying lock events…'));
    try {
      const data = await api.timeline(name);
      const events = data.events.slice(-50).reverse();
      render(timeline,
        h('p', {}, h('button', { type: 'button', onclick: loadTimeline }, 'Reload timeline')),
        events.length === 0 ? h('p', {}, 'No lock events.')
          : h('ol', { class: 'timeline', reversed: true },
          events.map((e) => h('li', {},
            h('button', { type: 'button', class: 'link', 'data-key': `rev:${e.revision}`,
              onclick: () => { control.set(e.revision); control.focus(); } }, `rev ${e.revision}`),
            ` ${e.type} ${e.runId} by ${e.worker} (fence ${e.fence})`,
            e.cause ? h('span', { class: 'muted' }, ` — ${e.cause}`) : null))));
    } catch (err) {
      render(timeline, h('p', { class: 'error' }, errorText(err)));
    }
  };
  return { dispose: poll.stop };
}

function jobHeader(job, reload, liveLocks) {
  const spec = job.spec;
  if (spec === null) {
    return [h('h1', {}, job.name), h('p', { class: 'error' }, job.invalid ?? 'invalid spec')];
  }
  const command = spec.http ? `${spec.http.method} ${spec.http.url}` : spec.command ?? (spec.argv ?? []).join(' ');
  const row = (term, ...value) => [h('dt', {}, term), h('dd', {}, ...value)];
  return [
    h('div', { class: 'title' }, h('h1', {}, job.name), badge(spec.paused ? 'paused' : 'active')),
    actionButtons(job.name, spec.paused, reload, liveLocks),
    h('dl', { class: 'spec card' },
      row('Schedule', h('code', {}, spec.schedule), ` (${spec.timezone})`),
      row('Command', h('code', {}, command)),
      row('Overlap', spec.overlap),
      row('Retries', String(spec.retries.count)),
      row('Tags', spec.tags.length === 0 ? '—' : spec.tags.join(', ')),
      spec.after ? row('Runs after', h('a', { href: jobHref(spec.after.job) }, spec.after.job), ` (on ${spec.after.on})`) : null,
      spec.alerts ? row('Alerts', `on ${spec.alerts.on.join(', ')} to ${[spec.alerts.webhook ? 'webhook' : null, spec.alerts.command ? 'command' : null].filter(Boolean).join(' and ')}`) : null,
      row('Revisions', `created ${job.createRevision}, modified ${job.modRevision}`)),
  ];
}

function lockTable(locks) {
  if (locks.length === 0) return h('p', { class: 'muted' }, 'No run holds the lock.');
  return h('table', {},
    headRow(['Run', 'Worker', 'Fence', 'Lease TTL']),
    h('tbody', {}, locks.map((l) => h('tr', { class: 'lock-row' },
      h('td', {}, h('a', { href: runHref(l.job, l.slot) }, l.runId)),
      h('td', {}, l.worker),
      h('td', {}, String(l.fence)),
      h('td', {}, ttl(l.ttlSeconds))))));
}

function historyTable(name, runs, rev) {
  if (runs.length === 0) return h('p', { class: 'muted' }, 'No runs recorded.');
  const suffix = rev === null ? '' : `?rev=${rev}`;
  return h('table', {},
    headRow(['Slot', 'State', 'Attempt', 'Worker', 'Fence', 'Started', 'Duration', 'Reason']),
    h('tbody', {}, runs.map((r) => h('tr', { class: 'run-row' },
      h('td', {}, h('a', { href: `${runHref(name, r.slot)}${suffix}`, class: 'nowrap' }, r.slot)),
      h('td', {}, badge(r.state)),
      h('td', {}, String(r.attempt)),
      h('td', {}, r.worker ?? '—'),
      h('td', {}, r.fence === undefined ? '—' : String(r.fence)),
      h('td', {}, timeCell(r.startedAtMs)),
      h('td', {}, duration(r.startedAtMs, r.endedAtMs)),
      h('td', { class: 'reason' }, [r.triggeredBy ? `after ${r.triggeredBy}` : null, r.reason ?? null].filter(Boolean).join('; '))))));
}

function alertTable(alerts) {
  const rows = alerts.flatMap((a) => Object.entries(a.channels).map(([channel, d]) => {
    const last = d.attempts[d.attempts.length - 1];
    return h('tr', { class: 'alert-row' },
      h('td', {}, h('a', { href: runHref(a.job, a.slot), class: 'nowrap' }, a.slot)),
      h('td', {}, badge(a.state)),
      h('td', {}, channel),
      h('td', {}, d.status),
      h('td', {}, String(d.attempts.length)),
      h('td', { class: 'reason' }, last ? last.detail : ''));
  }));
  if (rows.length === 0) return h('p', { class: 'muted' }, 'No alerts sent.');
  return h('table', {}, headRow(['Slot', 'State', 'Channel', 'Delivery', 'Tries', 'Last outcome']), h('tbody', {}, rows));
}

// ---- One run ----------------------------------------------------------------------------------

function runPage(name, slotWithQuery) {
  const [slot, query = ''] = slotWithQuery.split('?');
  const rev = new URLSearchParams(query).get('rev');
  const details = h('div');
  const output = h('pre', { class: 'output', tabindex: 0, 'aria-label': 'Run output' });
  const followState = h('p', { class: 'muted', 'aria-live': 'polite' });
  replace(main,
    h('p', {}, h('a', { href: jobHref(name) }, `← ${name}`)),
    h('h1', {}, `Run ${slot}`),
    details,
    h('section', { class: 'card', 'aria-labelledby': 'output-h' },
      h('h2', { id: 'output-h' }, 'Output'), followState, output));
  const aborter = new AbortController();

  const load = async () => {
    await refreshStatus();
    const { run } = await api.run(name, slot, rev);
    render(details, runDetails(name, run, load));
    output.textContent = run.outputTail;
    if (run.outputTail === '') replace(followState, 'No output.');
    const isLive = run.state === 'claimed' || run.state === 'running';
    if (!isLive || rev !== null) return;
    replace(followState, 'Following live output…');
    let text = '';
    try {
      await api.follow(name, slot, (chunk) => {
        text += chunk;
        output.textContent = text;
        output.scrollTop = output.scrollHeight;
      }, aborter.signal);
      replace(followState, 'The run ended.');
      const { run: ended } = await api.run(name, slot);
      render(details, runDetails(name, ended, load));
    } catch (err) {
      if (!aborter.signal.aborted) replace(followState, `Follow stopped: ${errorText(err)}`);
    }
  };
  load().catch((err) => say(errorText(err), 'error'));
  return { dispose: () => aborter.abort() };
}

function runDetails(name, run, reload) {
  const row = (term, ...value) => [h('dt', {}, term), h('dd', {}, ...value)];
  const isLive = run.state === 'claimed' || run.state === 'running';
  return [
    h('dl', { class: 'spec card' },
      row('State', badge(run.state)),
      row('Run id', h('code', {}, run.runId)),
      row('Worker', run.worker ?? '—'),
      row('Fence', run.fence === undefined ? '—' : String(run.fence)),
      row('Attempt', String(run.attempt)),
      row('Started', timeCell(run.startedAtMs)),
      row('Ended', timeCell(run.endedAtMs)),
      row('Exit', run.exitCode === undefined ? (run.signal ?? '—') : String(run.exitCode)),
      row('Reason', run.reason ?? '—')),
    isLive ? h('p', {}, h('button', {
      type: 'button', class: 'danger',
      onclick: () => act(`Kill ${run.runId}`, () => api.kill(name, run.runId), () => void reload()),
    }, 'Kill this run')) : null,
  ];
}

// ---- Locks and workers ------------------------------------------------------------------------

/** How far back the cluster page's slider reaches (older revisions may be compacted anyway). */
const CLUSTER_REVISIONS_BACK = 5_000;

function clusterPage() {
  const control = revisionControl(() => poll.now());
  const workers = h('div');
  const locks = h('div');
  replace(main, h('h1', {}, 'Locks and workers'),
    h('section', { class: 'card' }, control.element),
    section('workers-h', 'Workers', workers),
    section('locks-h', 'Locks', locks));
  const poll = poller(async () => {
    const status = await refreshStatus();
    control.bounds(Math.max(1, status.revision - CLUSTER_REVISIONS_BACK), status.revision);
    const rev = control.pinned();
    const [w, l] = await Promise.all([api.workers(rev), api.locks(rev)]);
    render(workers, w.workers.length === 0 ? h('p', { class: 'muted' }, 'No workers registered.')
      : h('table', {},
      headRow(['Worker', 'Tags', 'Host', 'Started', 'Lease TTL', 'Running']),
      h('tbody', {}, w.workers.map((x) => h('tr', {},
        h('th', { scope: 'row' }, x.id),
        h('td', {}, x.tags.length === 0 ? '—' : x.tags.join(', ')),
        h('td', {}, `${x.hostname} (pid ${x.pid})`),
        h('td', {}, timeCell(Date.parse(x.startedAt))),
        h('td', {}, ttl(x.ttlSeconds)),
        h('td', {}, x.running.length === 0 ? '—' : x.running.join(', ')))))));
    render(locks, l.locks.length === 0 ? h('p', { class: 'muted' }, 'No locks held.')
      : h('table', {},
      headRow(['Job', 'Run', 'Worker', 'Fence', 'Lease TTL']),
      h('tbody', {}, l.locks.map((x) => h('tr', {},
        h('th', { scope: 'row' }, h('a', { href: jobHref(x.job) }, x.job)),
        h('td', {}, h('a', { href: runHref(x.job, x.slot) }, x.runId)),
        h('td', {}, x.worker),
        h('td', {}, String(x.fence)),
        h('td', {}, ttl(x.ttlSeconds)))))));
  }, () => control.pinned() === null);
  return { dispose: poll.stop };
}

// ---- Router -----------------------------------------------------------------------------------

function route() {
  page?.dispose();
  say('');
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const [first = '', name, kind, slot] = parts;
  for (const link of document.querySelectorAll('[data-nav]')) {
    const current = link.dataset.nav === (first === 'cluster' ? 'cluster' : 'jobs');
    if (current) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (first === 'job' && name && kind === 'run' && slot) page = runPage(name, slot);
  else if (first === 'job' && name) page = jobPage(name);
  else if (first === 'cluster') page = clusterPage();
  else page = jobsPage();
  document.title = first === 'job' && name ? `${name} · etcron` : 'etcron';
}

window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
route();
