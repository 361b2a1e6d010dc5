// Bundles src/index.js into the single minified ES module the relay embeds and serves at
// /public/mte-relay-browser.js. Deterministic: `npm run build` reproduces the committed file byte
// for byte. Usage: node scripts/build.mjs [outfile]   (default dist/mte-relay-browser.js)
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const outfile = process.argv[2] ?? `${root}dist/mte-relay-browser.js`;

await build({
  entryPoints: [`${root}src/index.js`],
  outfile,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
});
