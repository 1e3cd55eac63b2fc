import { readdirSync, readFileSync } from 'node:fs';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../shared/log.js';
import { ApiError } from './errors.js';
import type { Route, RouteResult, RequestContext } from './http-server.js';

/**
 * The web UI: plain HTML, CSS and ES modules from master/ui/assets, served as they are (no build
 * step). Compiled code runs from dist/master, so the assets are found in the source tree's place.
 */
function assetsDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const fromDist = join(here, '..', '..', 'master', 'ui', 'assets');
  return here.includes(join('dist', 'master')) ? fromDist : join(here, 'ui', 'assets');
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** Scripts and styles from this origin only: output shown by mistake as HTML would run nothing. */
const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; "
    + "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    + "frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

interface Asset {
  readonly type: string;
  readonly body: Buffer;
}

/** Reads the assets once; only these file names are ever served (no paths from the request). */
function loadAssets(logger: Logger): ReadonlyMap<string, Asset> {
  const assets = new Map<string, Asset>();
  const dir = assetsDir();
  try {
    for (const name of readdirSync(dir)) {
      const type = CONTENT_TYPES[extname(name)];
      if (type !== undefined) assets.set(name, { type, body: readFileSync(join(dir, name)) });
    }
  } catch (err) {
    logger.warn({ err, dir }, 'web UI assets not found; the UI is unavailable');
  }
  return assets;
}

function send(context: RequestContext, asset: Asset | undefined, name: string): RouteResult {
  if (asset === undefined) throw new ApiError('not-found', `no UI file ${JSON.stringify(name)}`);
  context.response.writeHead(200, {
    ...SECURITY_HEADERS,
    'content-type': asset.type,
    'content-length': asset.body.length,
  });
  context.response.end(asset.body);
  return 'streamed';
}

export function uiRoutes(logger: Logger): Route[] {
  const assets = loadAssets(logger);
  const index = async (context: RequestContext): Promise<RouteResult> =>
    send(context, assets.get('index.html'), 'index.html');
  return [
    {
      method: 'GET',
      path: '/',
      handler: async (context) => {
        context.response.writeHead(302, { location: '/ui/' });
        context.response.end();
        return 'streamed';
      },
    },
    { method: 'GET', path: '/ui', handler: index },
    {
      method: 'GET',
      path: '/ui/:file',
      handler: async (context) => {
        const name = context.params['file'] ?? '';
        return send(context, assets.get(name), name);
      },
    },
  ];
}
