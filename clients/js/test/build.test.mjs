// The committed bundle must be exactly what `npm run build` produces from the committed sources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

test('bundle_is_reproducible_byte_for_byte', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pqrelay-build-'));
  try {
    const out = join(dir, 'mte-relay-browser.js');
    execFileSync(process.execPath, [join(root, 'scripts/build.mjs'), out], { stdio: 'inherit' });
    const committed = readFileSync(join(root, 'dist/mte-relay-browser.js'));
    assert.ok(readFileSync(out).equals(committed), 'dist/mte-relay-browser.js is stale: run `npm run build`');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bundle_exports_the_public_surface', async () => {
  const bundle = await import(join(root, 'dist/mte-relay-browser.js'));
  assert.deepEqual(Object.keys(bundle).sort(), ['MteOutcomeUnknownError', 'MteRelayError', 'clearRelayTrust', 'initMteRelayClient', 'mteFetch', 'relayFingerprint', 'sha256Stream']);
});
