// The on-path attacker (`pqrelay-attacker`) against the client bundle in headless Chromium, in
// front of the real relay and the counting test upstream. Each scenario is a fresh page (a fresh
// client) on the attacker's origin that imports the bundle the relay serves:
//   (a) substitute-key / answer-pairing, pinned and trusted on first use (same origin, same
//       localStorage) → a hard error naming the relay's fingerprint;
//   (b) forge-error / (c) cut → the upstream counts the POST once, the page gets the answer or
//       MteOutcomeUnknownError; a GET is sent again and succeeds;
//   (d) add-headers → the added plain headers never reach the upstream.
// Screenshots of each scenario's result go to test-artifacts/.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { attackerSkipReason as skip, RELAY_FP, startAttackBench } from '../test/_harness.mjs';
import { artifact, launchChromium } from './_browser.mjs';

if (skip) console.log(`# e2e/attacker.test.mjs skipped: ${skip}`);

const TIMEOUT = 90_000;

/** @type {Awaited<ReturnType<typeof startAttackBench>>} */
let bench;
let browser;
let names = 0;

before(async () => {
  if (skip) return;
  bench = await startAttackBench();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await bench?.stop();
});

const attacker = (mode, options) => bench.attacker(mode, options);
const counterName = (what) => `${what}-chromium-${++names}`;

/**
 * In a new page on `origin`: imports the bundle, pairs (with `pins` if given) and sends `requests`
 * in order; returns what happened, shown in the page for the screenshot `shot`.
 */
async function scenario(origin, { pins, requests = [], shot }) {
  const page = await browser.context.newPage();
  try {
    await page.goto(`${origin}/api/mte-ready`);
    const result = await page.evaluate(
      async ({ pins, requests }) => {
        const m = await import('/public/mte-relay-browser.js');
        const describe = (e) => ({ name: e.name, code: e.code, status: e.status, message: e.message, fingerprint: e.fingerprint });
        const out = { requests: [], trusted: localStorage.getItem(`pqrelay:relay-keys:${location.origin}`) };
        try {
          await m.initMteRelayClient({ relayUrl: location.origin, numberOfPairs: 2, ...(pins ? { pins } : {}) });
          out.fingerprint = m.relayFingerprint();
        } catch (e) {
          out.pairing = describe(e);
        }
        for (const r of out.pairing ? [] : requests) {
          try {
            const res = await m.mteFetch(`${location.origin}${r.path}`, r.init);
            out.requests.push({ status: res.status, body: await res.json() });
          } catch (e) {
            out.requests.push({ error: describe(e) });
          }
        }
        out.trustedAfter = localStorage.getItem(`pqrelay:relay-keys:${location.origin}`);
        document.body.innerHTML = `<pre style="white-space:pre-wrap;font:13px monospace"></pre>`;
        document.querySelector('pre').textContent = JSON.stringify(out, null, 2);
        return out;
      },
      { pins, requests },
    );
    if (shot) await page.screenshot({ path: artifact(`e2e-attacker-${shot}.png`), fullPage: true });
    return result;
  } finally {
    await page.close();
  }
}

const post = (name) => ({ path: `/count/${name}`, init: { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' } });
const get = (path) => ({ path, init: {} });

function assertHardError(result, code) {
  assert.ok(result.pairing, `pairing must fail: ${JSON.stringify(result)}`);
  assert.equal(result.pairing.code, code, result.pairing.message);
  assert.ok(result.pairing.message.includes(RELAY_FP), `names ${RELAY_FP}: ${result.pairing.message}`);
}

test('a_substitute_key_pinned', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('substitute-key');
  assertHardError(await scenario(a.url, { pins: [RELAY_FP], shot: 'substitute-key-pinned' }), 'relay_key_not_trusted');
});

test('a_answer_pairing_pinned', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('answer-pairing');
  assertHardError(await scenario(a.url, { pins: [RELAY_FP], shot: 'answer-pairing-pinned' }), 'pairing_not_confirmed');
});

test('a_trust_on_first_use_after_one_clean_contact', { skip, timeout: TIMEOUT }, async () => {
  const clean = await attacker('pass');
  const name = counterName('tofu');
  const first = await scenario(clean.url, { requests: [post(name)] });
  assert.equal(first.pairing, undefined, JSON.stringify(first));
  assert.equal(first.fingerprint, RELAY_FP);
  assert.equal(first.trusted, null, 'first contact: nothing stored yet');
  assert.equal(first.trustedAfter, RELAY_FP, 'the confirmed key is stored beside the client id');
  assert.equal(first.requests[0].body.count, 1);
  await clean.stop();
  for (const [mode, code] of [
    ['substitute-key', 'relay_key_not_trusted'],
    ['answer-pairing', 'pairing_not_confirmed'],
  ]) {
    const a = await attacker(mode, { port: clean.port }); // the same origin, so the same localStorage
    const later = await scenario(a.url, { requests: [post(name)], shot: `tofu-${mode}` });
    assertHardError(later, code);
    assert.equal(later.trustedAfter, RELAY_FP, 'the stored trust is unchanged');
    await a.stop();
  }
  assert.equal(await bench.count(name), 1);
});

for (const [letter, mode] of [
  ['b', 'forge-error'],
  ['c', 'cut'],
]) {
  test(`${letter}_${mode.replace('-', '_')}_post_once_get_again`, { skip, timeout: TIMEOUT }, async () => {
    const postName = counterName(`post-${mode}`);
    const a = await attacker(mode);
    const p = await scenario(a.url, { requests: [post(postName)], shot: `${mode}-post` });
    const [got] = p.requests;
    assert.equal(await bench.count(postName), 1, `the upstream ran the POST once: ${JSON.stringify(got)}`);
    if (got.error) {
      assert.equal(got.error.name, 'MteOutcomeUnknownError', got.error.message);
      assert.equal(got.error.code, 'outcome_unknown');
    } else assert.equal(got.body.count, 1);
    await a.stop();

    const getName = counterName(`get-${mode}`);
    const b = await attacker(mode);
    const g = await scenario(b.url, { requests: [get(`/count/${getName}`)], shot: `${mode}-get` });
    assert.equal(g.requests[0].status, 200, JSON.stringify(g.requests[0]));
    assert.equal(g.requests[0].body.count, 2, 'the first GET ran, its answer was lost, the second one answered');
  });
}

test('d_add_headers_never_reach_the_upstream', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('add-headers');
  const r = await scenario(a.url, { requests: [get('/headers'), { path: '/headers', init: { method: 'POST', headers: { 'x-caller': 'yes' }, body: 'hi' } }], shot: 'add-headers' });
  for (const { status, body } of r.requests) {
    assert.equal(status, 200);
    const headers = body.headers ?? body;
    for (const name of ['x-http-method-override', 'x-original-url', 'x-attacker']) assert.equal(headers[name], undefined, `${name} reached the upstream`);
    assert.ok(!String(headers['x-forwarded-for'] ?? '').includes('6.6.6.6'));
  }
  assert.equal((r.requests[1].body.headers ?? r.requests[1].body)['x-caller'], 'yes');
});
