// An active attacker on the wire (`pqrelay-attacker`, PROTOCOL.md §16) between this client and the
// real relay, in front of the counting test upstream (`pqrelay-test-upstream`):
//   (a) substitute-key / answer-pairing: pairing fails with a hard error naming the fingerprint,
//       pinned or trusted on first use after one clean contact;
//   (b) forge-error and (c) cut: the upstream counts each POST once, the caller gets the real
//       answer or MteOutcomeUnknownError; a GET is sent again and succeeds;
//   (d) add-headers: the added plain headers never reach the upstream.
// Runs when PQRELAY_BIN is set and the testkit binaries are built beside it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MteOutcomeUnknownError, MteRelayError } from '../src/_errors.js';
import { prepareRequest, relayFetch } from '../src/_fetch.js';
import { Relay } from '../src/_relay.js';
import { formatFingerprint, parseFingerprint } from '../src/_relay_key.js';
import { loadTrustedKeys } from '../src/_store.js';
import { attackerSkipReason as skip, RELAY_FP, startAttackBench } from './_harness.mjs';

if (skip) console.log(`# attacker.test.mjs skipped: ${skip}`);

const TIMEOUT = 60_000;
const settings = { encodeUrls: true, encodeHeaders: true };

/** @type {Awaited<ReturnType<typeof startAttackBench>>} */
let bench;
let names = 0;

before(async () => {
  if (!skip) bench = await startAttackBench();
});
after(() => bench?.stop());

const attacker = (mode, options) => bench.attacker(mode, options);
const fresh = (origin, options = {}) => new Relay(origin, { numberOfPairs: 2, ...options });
const counterName = (what) => `${what}-${process.pid}-${++names}`;

async function send(relay, path, init) {
  return relayFetch(relay, await prepareRequest(`${relay.origin}${path}`, init), settings);
}

/** A POST to /count/<name>: the answer's count, or the MteOutcomeUnknownError. */
async function postOnce(relay, name) {
  try {
    const res = await send(relay, `/count/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":1}' });
    assert.equal(res.status, 200);
    return { count: (await res.json()).count };
  } catch (error) {
    if (error instanceof MteOutcomeUnknownError) return { unknown: error };
    throw error;
  }
}

const hardError = (code, fp) => (e) => {
  assert.ok(e instanceof MteRelayError, String(e));
  assert.equal(e.code, code, e.message);
  assert.ok(e.message.includes(fp), `the error names ${fp}: ${e.message}`);
  return true;
};

test('pins_accept_the_relay_key_and_refuse_another', { skip, timeout: TIMEOUT }, async () => {
  const relay = fresh(bench.stack.relayUrl, { pins: [parseFingerprint(RELAY_FP)] });
  await relay.ready();
  assert.equal(relay.fingerprint, RELAY_FP);
  const other = formatFingerprint(new Uint8Array(32).fill(7));
  const wrong = fresh(bench.stack.relayUrl, { pins: [parseFingerprint(other)] });
  await assert.rejects(wrong.ready(), (e) => hardError('relay_key_not_trusted', other)(e) && e.offered.includes(RELAY_FP));
});

test('a_substitute_key_pinned', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('substitute-key');
  const relay = fresh(a.url, { pins: [parseFingerprint(RELAY_FP)] });
  await assert.rejects(relay.ready(), (e) => hardError('relay_key_not_trusted', RELAY_FP)(e) && !e.offered.includes(RELAY_FP));
  await assert.rejects(relay.ready(), hardError('relay_key_not_trusted', RELAY_FP), 'never a silent re-pair');
});

test('a_answer_pairing_pinned', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('answer-pairing');
  const relay = fresh(a.url, { pins: [parseFingerprint(RELAY_FP)] });
  await assert.rejects(relay.ready(), (e) => hardError('pairing_not_confirmed', RELAY_FP)(e) && e.fingerprint === RELAY_FP);
});

test('a_trust_on_first_use_after_one_clean_contact', { skip, timeout: TIMEOUT }, async () => {
  // Same relay origin (the same port) throughout, as for a client whose path gets an attacker later.
  const clean = await attacker('pass');
  const first = fresh(clean.url);
  await first.ready();
  assert.equal(first.fingerprint, RELAY_FP);
  assert.deepEqual(loadTrustedKeys(clean.url), [RELAY_FP], 'the confirmed key is stored beside the client id');
  const name = counterName('tofu');
  assert.equal((await (await send(first, `/count/${name}`)).json()).count, 1);
  await clean.stop();

  for (const mode of ['substitute-key', 'answer-pairing']) {
    const a = await attacker(mode, { port: clean.port });
    assert.equal(a.url, clean.url);
    const later = fresh(a.url);
    await assert.rejects(later.ready(), hardError(mode === 'substitute-key' ? 'relay_key_not_trusted' : 'pairing_not_confirmed', RELAY_FP), mode);
    assert.deepEqual(loadTrustedKeys(a.url), [RELAY_FP], 'the stored trust is unchanged');
    await a.stop();
  }
  assert.equal(await bench.count(name), 1);
});

for (const mode of ['forge-error', 'cut']) {
  test(`${mode === 'cut' ? 'c' : 'b'}_${mode.replace('-', '_')}_post_runs_once`, { skip, timeout: TIMEOUT }, async () => {
    const a = await attacker(mode);
    const relay = fresh(a.url);
    await relay.ready();
    const name = counterName(`post-${mode}`);
    const got = await postOnce(relay, name);
    assert.equal(await bench.count(name), 1, 'the upstream ran the POST exactly once');
    if (got.unknown) assert.match(got.unknown.message, /may or may not have run/);
    else assert.equal(got.count, 1);
    // the pool is healthy afterwards
    assert.equal((await postOnce(relay, name)).count, 2);
  });

  test(`${mode === 'cut' ? 'c' : 'b'}_${mode.replace('-', '_')}_get_is_sent_again`, { skip, timeout: TIMEOUT }, async () => {
    const a = await attacker(mode);
    const relay = fresh(a.url);
    await relay.ready();
    const name = counterName(`get-${mode}`);
    const res = await send(relay, `/count/${name}`);
    assert.equal(res.status, 200);
    const answer = await res.json();
    assert.equal(answer.method, 'GET');
    assert.equal(answer.count, 2, 'the first GET ran, its answer was lost, the second one answered');
    assert.equal(await bench.count(name), 2);
  });
}

test('b_forge_error_many_times_still_runs_a_post_at_most_once', { skip, timeout: TIMEOUT }, async () => {
  // Every exchange answered by a forged error: the client never gets an answer, and never runs it twice.
  const a = await attacker('forge-error', { times: 100 });
  const relay = fresh(a.url);
  await relay.ready();
  const name = counterName('post-forge-many');
  const got = await postOnce(relay, name);
  assert.ok(got.unknown, 'outcome unknown');
  assert.equal(await bench.count(name), 1);
  const getName = counterName('get-forge-many');
  await assert.rejects(send(relay, `/count/${getName}`), (e) => e instanceof MteRelayError && e.code === 'relay_error' && e.status === 562);
  assert.ok((await bench.count(getName)) <= 2, 'an idempotent request is sent at most twice after relay errors');
});

test('d_add_headers_never_reach_the_upstream', { skip, timeout: TIMEOUT }, async () => {
  const a = await attacker('add-headers');
  const relay = fresh(a.url);
  for (const init of [{}, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-caller': 'yes' }, body: 'hello' }]) {
    const res = await send(relay, '/headers', init);
    assert.equal(res.status, 200);
    const seen = await res.json();
    const headers = seen.headers ?? seen;
    for (const name of ['x-http-method-override', 'x-original-url', 'x-attacker']) assert.equal(headers[name], undefined, `${name} reached the upstream`);
    assert.ok(!String(headers['x-forwarded-for'] ?? '').includes('6.6.6.6'), `x-forwarded-for ${headers['x-forwarded-for']}`);
    if (init.method) assert.equal(headers['x-caller'], 'yes', 'sealed headers do reach it');
  }
});
