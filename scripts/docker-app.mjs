// Copies what etcron needs at run time from a built checkout into the image's /app: bin/, dist/
// without source maps, package.json, and the production packages of package-lock.json without
// docs, types and (for better-sqlite3) the sources and build leftovers around its one addon.
//   node scripts/docker-app.mjs <checkout> <target>
import { cpSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';

const [source, target] = process.argv.slice(2);
if (source === undefined || target === undefined) {
  process.stderr.write('usage: node scripts/docker-app.mjs <checkout> <target>\n');
  process.exit(2);
}

const NOT_AT_RUN_TIME = /(\.d\.[cm]?ts|\.map|\.md|\.markdown)$|^(readme|changelog)(\.[a-z]+)?$/i;
const ADDON_PACKAGE = join('node_modules', 'better-sqlite3');
const ADDON_KEEP = ['package.json', 'lib', join('build', 'Release', 'better_sqlite3.node')];

function keep(path) {
  const name = basename(path);
  if (name !== 'package.json' && NOT_AT_RUN_TIME.test(name)) return false;
  const inAddon = relative(join(source, ADDON_PACKAGE), path);
  if (inAddon === '' || inAddon.startsWith('..')) return true;
  // Directories on the way to a kept file are kept; everything else in the addon package goes.
  return ADDON_KEEP.some((k) => k === inAddon || k.startsWith(inAddon + sep) || inAddon.startsWith(k + sep));
}

function copy(path) {
  cpSync(join(source, path), join(target, path), { recursive: true, filter: keep });
}

mkdirSync(target, { recursive: true });
// The .proto files and the web UI are read at run time from the source tree's place
// (store/api/grpc-server.ts, master/ui-routes.ts).
const APP_PATHS = [
  'package.json', 'bin', 'dist', join('store', 'api', 'proto'), join('master', 'ui', 'assets'),
  join('scripts', 'docker-healthcheck.mjs'),
];
for (const path of APP_PATHS) copy(path);
const lock = JSON.parse(readFileSync(join(source, 'package-lock.json'), 'utf8'));
let count = 0;
for (const [path, entry] of Object.entries(lock.packages)) {
  // The root entry ('') is the project itself; dev-only packages stay out of the image.
  if (path === '' || entry.dev === true || !existsSync(join(source, path))) continue;
  copy(path);
  count += 1;
}
process.stdout.write(`docker-app: ${count} production packages copied to ${target}\n`);
