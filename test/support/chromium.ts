import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_BINARY = '/usr/bin/chromium';

/**
 * Debian's chromium drives the web UI tests. Under CI=true a missing browser fails the test (the
 * CI script installs it); elsewhere the UI tests skip without it.
 */
export function hasChromium(): boolean {
  const present = existsSync(CHROMIUM_BINARY);
  if (!present && process.env['CI'] === 'true') {
    throw new Error(`chromium is required under CI: ${CHROMIUM_BINARY} missing`);
  }
  return present;
}

export interface Browser {
  readonly context: BrowserContext;
  close(): Promise<void>;
}

/** A headless chromium with a fresh profile, no network chatter of its own. */
export async function launchChromium(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'etcron-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_BINARY,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1280, height: 900 },
  });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
