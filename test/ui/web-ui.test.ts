import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { hasEtcd, type StoreProcess } from '../support/etcd-process.js';
import { startStoreUnderTest } from '../support/store-under-test.js';
import { waitFor } from '../support/ports.js';
import { hasChromium, launchChromium, type Browser } from '../support/chromium.js';
import {
  apiGet, startMasterProcess, startWorkerProcess, type DaemonProcess,
} from '../scheduler/cli-harness.js';

// The web UI (issue #13) in a real headless Chromium against a real master, worker and store:
// jobs listed, history and output (as text, never as HTML), pause/resume/kill from the UI, and
// the lock owner and history as they were at an earlier revision.

interface RunRow { slot: string; runId: string; state: string }
interface LockRow { job: string; slot: string; runId: string; worker: string }

const SHOTS = process.env['ETCRON_UI_SCREENSHOTS'];

describe.skipIf(!hasEtcd() || !hasChromium())('web UI', () => {
  let store: StoreProcess;
  let master: DaemonProcess;
  let worker: DaemonProcess;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    store = await startStoreUnderTest();
    [master, worker, browser] = await Promise.all([
      startMasterProcess({ endpoint: store.endpoint, id: 'm-ui' }),
      startWorkerProcess({ endpoint: store.endpoint, id: 'w-ui', leaseTtlSeconds: 3 }),
      launchChromium(),
    ]);
    page = await browser.context.newPage();
    page.setDefaultTimeout(15_000);
  });
  afterAll(async () => {
    await browser?.close();
    await worker?.kill('SIGKILL');
    await master?.kill('SIGKILL');
    await store?.kill();
    store?.cleanup();
  });

  const post = async (path: string, body?: unknown): Promise<void> => {
    const response = await fetch(`${master.apiUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(5_000),
    });
    expect(response.ok, await response.text()).toBe(true);
  };
  const historyOf = async (job: string): Promise<RunRow[]> =>
    (await apiGet<{ runs: RunRow[] }>(`${master.apiUrl}/v1/jobs/${job}/history`)).runs;
  const isPaused = async (job: string): Promise<boolean> =>
    (await apiGet<{ job: { spec: { paused: boolean } } }>(`${master.apiUrl}/v1/jobs/${job}`))
      .job.spec.paused;
  const shot = async (name: string): Promise<void> => {
    if (SHOTS === undefined) return;
    await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
  };

  it('lists a job, shows its history and a run\'s output as text', {
    timeout: 90_000,
  }, async () => {
    // Output that would run script and render markup if the UI ever parsed it as HTML.
    const hostile = '<script>window.__pwned = 1</script>'
      + '<img src=x onerror="window.__pwned = 2"><b>bold</b>';
    await post('/v1/jobs', {
      name: 'ui-echo', schedule: '* * * * * *', overlap: 'Forbid',
      command: `printf '%s\\n' '${hostile}'`,
    });
    const done = await waitFor('a finished run', async () =>
      (await historyOf('ui-echo')).find((r) => r.state === 'succeeded'), 20_000);

    // Only the UI's own files are served, with a policy that runs no inline script.
    const index = await fetch(`${master.apiUrl}/ui/`, { signal: AbortSignal.timeout(5_000) });
    expect(index.headers.get('content-security-policy')).toContain("script-src 'self'");
    const escape = await fetch(`${master.apiUrl}/ui/..%2F..%2Fpackage.json`, {
      signal: AbortSignal.timeout(5_000),
    });
    expect(escape.status).toBe(404);

    await page.goto(`${master.apiUrl}/`);
    expect(new URL(page.url()).pathname).toBe('/ui/');
    const jobLink = page.getByRole('link', { name: 'ui-echo', exact: true });
    const row = page.getByRole('row').filter({ has: jobLink });
    await row.getByText('active').waitFor();
    await row.getByText('succeeded').first().waitFor();
    await shot('jobs');

    await jobLink.click();
    await page.getByRole('heading', { name: 'ui-echo', level: 1 }).waitFor();
    await page.getByRole('link', { name: done.slot, exact: true }).click();
    const output = page.getByLabel('Run output');
    await expect.poll(() => output.textContent(), { timeout: 15_000 }).toBe(`${hostile}\n`);
    await shot('run');
    const pwned = await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned);
    expect(pwned).toBeUndefined();
    expect(await page.locator('pre.output b, pre.output script, pre.output img').count()).toBe(0);
  });

  it('shows a job\'s alert deliveries and the parent of a dependent job\'s runs', {
    timeout: 90_000,
  }, async () => {
    await post('/v1/jobs', {
      name: 'ui-fails', schedule: '@every 2s', command: 'exit 2', alerts: { on: ['failed'], command: 'true' },
    });
    await post('/v1/jobs', { name: 'ui-after', schedule: '@triggered', after: { job: 'ui-fails', on: 'failure' }, command: 'true' });
    await page.goto(`${master.apiUrl}/ui/#/job/ui-fails`);
    const alerts = page.locator('section', { has: page.getByRole('heading', { name: 'Alerts' }) });
    await alerts.locator('tr.alert-row', { hasText: 'delivered' }).first().waitFor({ timeout: 20_000 });
    expect(await alerts.locator('tr.alert-row').first().textContent()).toContain('command');
    await page.goto(`${master.apiUrl}/ui/#/job/ui-after`);
    await page.getByRole('link', { name: 'ui-fails', exact: true }).waitFor();
    const runs = page.locator('section', { has: page.getByRole('heading', { name: 'Lock and history at a revision' }) });
    await runs.locator('tr.run-row', { hasText: 'after ui-fails@' }).first().waitFor({ timeout: 20_000 });
    await shot('alerts');
    for (const job of ['ui-fails', 'ui-after']) await fetch(`${master.apiUrl}/v1/jobs/${job}`, { method: 'DELETE', signal: AbortSignal.timeout(5_000) });
  });

  it('pauses, resumes and kills from the UI; shows lock and history at an earlier revision', {
    timeout: 120_000,
  }, async () => {
    await post('/v1/jobs', {
      name: 'ui-hold', schedule: '* * * * * *', overlap: 'Forbid',
      command: 'echo holding; sleep 30',
      killGraceMs: 500,
    });
    const lock = await waitFor('a live run', async () =>
      (await apiGet<{ locks: LockRow[] }>(`${master.apiUrl}/v1/locks`)).locks
        .find((l) => l.job === 'ui-hold'), 20_000);
    await waitFor('the run recorded running', async () =>
      (await historyOf('ui-hold')).find((r) => r.runId === lock.runId && r.state === 'running'),
      15_000);
    const heldAt = (await apiGet<{ revision: number }>(`${master.apiUrl}/v1/status`)).revision;

    await page.goto(`${master.apiUrl}/ui/#/job/ui-hold`);
    const lockHeading = page.getByRole('heading', { name: 'Lock and history at a revision' });
    const lockSection = page.locator('section', { has: lockHeading });
    await lockSection.getByRole('link', { name: lock.runId }).first().waitFor();

    // Pause, then kill the live run (Forbid and pause keep a new one from starting).
    await page.getByRole('button', { name: 'Pause', exact: true }).click();
    await waitFor('paused in the store', async () =>
      ((await isPaused('ui-hold')) ? true : undefined), 10_000);
    await page.getByRole('button', { name: 'Resume', exact: true }).waitFor();
    // The live run's page follows its output through the log stream.
    await lockSection.getByRole('link', { name: lock.runId }).first().click();
    await page.getByText('Following live output…').waitFor();
    await expect.poll(() => page.getByLabel('Run output').textContent()).toBe('holding\n');
    await page.goBack();
    await page.getByRole('button', { name: 'Kill', exact: true }).click();
    await waitFor('the run recorded killed', async () =>
      (await historyOf('ui-hold')).find((r) => r.runId === lock.runId && r.state === 'killed'),
      15_000);
    await lockSection.getByText('No run holds the lock.').waitFor();
    const slotLink = page.getByRole('link', { name: lock.slot, exact: true });
    const runRow = lockSection.getByRole('row').filter({ has: slotLink });
    await runRow.getByText('killed', { exact: true }).waitFor();

    // Back to the revision at which the run held the lock: owner and history as they were.
    await lockSection.getByLabel('Revision', { exact: true }).fill(String(heldAt));
    await lockSection.getByText(`as of revision ${heldAt}`).waitFor();
    const ownerRow = lockSection.getByRole('row').filter({ hasText: lock.worker });
    await ownerRow.getByRole('link', { name: lock.runId }).waitFor();
    await runRow.getByText('running', { exact: true }).waitFor();
    await shot('job-at-revision');

    // Live again: nothing holds the lock; then resume from the UI.
    await lockSection.getByRole('button', { name: 'Back to live' }).click();
    await lockSection.getByText('No run holds the lock.').waitFor();
    await page.getByRole('button', { name: 'Resume', exact: true }).click();
    await waitFor('resumed in the store', async () =>
      ((await isPaused('ui-hold')) ? undefined : true), 10_000);
    await page.getByRole('button', { name: 'Pause', exact: true }).waitFor();

    // The cluster page at that revision shows the same lock on its worker.
    await page.goto(`${master.apiUrl}/ui/#/cluster`);
    await page.getByRole('rowheader', { name: 'w-ui' }).waitFor();
    await page.getByLabel('Revision number').fill(String(heldAt));
    await page.getByLabel('Revision number').press('Enter');
    const locks = page.locator('section', { has: page.getByRole('heading', { name: 'Locks' }) });
    await locks.getByRole('link', { name: lock.runId }).waitFor();
    await shot('cluster-at-revision');
  });
});
