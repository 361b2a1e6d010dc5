// The delivery rules of PROTOCOL.md §12, outcome by outcome, against the scripted relay of
// _scripted_relay.mjs: which requests are sent again (and how: a new attempt, or the same pair with
// flag retry), which end in MteOutcomeUnknownError, and that a non-idempotent request never runs
// twice.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { MteOutcomeUnknownError, MteRelayError } from '../src/_errors.js';
import { prepareRequest, relayFetch } from '../src/_fetch.js';
import { Relay } from '../src/_relay.js';
import { startScriptedRelay } from './_scripted_relay.mjs';

const settings = { encodeUrls: true, encodeHeaders: true };
/** @type {Awaited<ReturnType<typeof startScriptedRelay>>} */
let relay;
let paths = 0;

before(async () => {
  relay = await startScriptedRelay();
});
after(() => relay.close());
beforeEach(() => {
  relay.script.length = 0;
  relay.log.length = 0;
});

const client = () => new Relay(relay.url, { numberOfPairs: 2 });
const freshPath = () => `/p${++paths}`;

/** Sends one request; resolves with the count the relay answered, or the error. */
async function call(c, path, init = {}) {
  try {
    const res = await relayFetch(c, await prepareRequest(`${relay.url}${path}`, init), settings);
    return res.status === 200 ? { count: Number(res.headers.get('x-count')) } : { status: res.status };
  } catch (error) {
    return { error };
  }
}

const POST = { method: 'POST', body: 'x' };
const outcomes = () => relay.log.map((e) => `${e.retry ? 'retry:' : ''}${e.outcome}`);

test('post_after_a_forged_error_is_retried_with_the_flag_and_refused', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'forge', status: 562 });
  const { error } = await call(client(), path, POST);
  assert.ok(error instanceof MteOutcomeUnknownError, String(error));
  assert.equal(error.code, 'outcome_unknown');
  assert.deepEqual(outcomes(), ['forge', 'retry:retry_refused']);
  assert.equal(relay.counts.get(path), 1);
});

test('post_after_a_cut_connection_is_retried_with_the_flag_and_refused', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'cut' });
  const { error } = await call(client(), path, POST);
  assert.ok(error instanceof MteOutcomeUnknownError, String(error));
  assert.equal(error.status, 564, 'the last failure seen: the relay refused the retry');
  assert.deepEqual(outcomes(), ['cut', 'retry:retry_refused']);
  assert.equal(relay.counts.get(path), 1);
});

test('post_whose_first_attempt_never_reached_the_relay_runs_through_the_retry', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'drop' });
  assert.deepEqual(await call(client(), path, POST), { count: 1 });
  assert.deepEqual(outcomes(), ['drop', 'retry:ok']);
});

test('post_with_authenticated_dead_is_sent_again_once', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'dead', status: 502, code: 'bad_gateway' });
  assert.deepEqual(await call(client(), path, POST), { count: 1 });
  assert.deepEqual(outcomes(), ['dead', 'ok']);
  // twice dead: the caller gets the relay's answer, nothing ran
  const other = freshPath();
  relay.log.length = 0;
  relay.script.push({ kind: 'dead', status: 562, code: 'decode_failed' }, { kind: 'dead', status: 562, code: 'decode_failed' });
  const { error } = await call(client(), other, POST);
  assert.ok(error instanceof MteRelayError && error.code === 'relay_error' && error.status === 562, String(error));
  assert.deepEqual(outcomes(), ['dead', 'dead']);
  assert.equal(relay.counts.get(other), undefined);
});

test('post_with_a_deterministic_dead_error_gets_the_relay_answer', async () => {
  relay.script.push({ kind: 'dead', status: 400, code: 'invalid_url' });
  assert.deepEqual(await call(client(), freshPath(), POST), { status: 400 });
  assert.deepEqual(outcomes(), ['dead']);
});

test('post_with_authenticated_unknown_is_retried_with_the_flag_and_runs', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'unknown', status: 503, code: 'state_store_unavailable' });
  assert.deepEqual(await call(client(), path, POST), { count: 1 });
  assert.deepEqual(outcomes(), ['unknown', 'retry:ok']);
});

test('post_with_partial_or_complete_is_outcome_unknown_at_once', async () => {
  for (const kind of ['partial', 'complete']) {
    relay.log.length = 0;
    const path = freshPath();
    relay.script.push({ kind, status: 502, code: 'bad_gateway' });
    const { error } = await call(client(), path, POST);
    assert.ok(error instanceof MteOutcomeUnknownError, String(error));
    assert.equal(error.status, 502);
    assert.deepEqual(outcomes(), [kind]);
    assert.equal(relay.counts.get(path), 1);
  }
});

test('post_with_a_pair_ending_error_is_not_retried', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'forge', status: 563, code: 'state_not_found' });
  const { error } = await call(client(), path, POST);
  assert.ok(error instanceof MteOutcomeUnknownError, String(error));
  assert.deepEqual(outcomes(), ['forge']);
  assert.equal(relay.counts.get(path), 1);
});

test('post_with_a_stream_body_is_never_sent_twice', async () => {
  const path = freshPath();
  relay.script.push({ kind: 'forge', status: 562 });
  const body = new ReadableStream({
    start(c) {
      c.enqueue(new Uint8Array([1, 2, 3]));
      c.close();
    },
  });
  const { error } = await call(client(), path, { method: 'POST', body, duplex: 'half' });
  assert.ok(error instanceof MteOutcomeUnknownError && /could not be sent again/.test(error.message), String(error));
  assert.deepEqual(outcomes(), ['forge']);
});

test('idempotent_requests_are_sent_again_after_errors_and_lost_connections', async () => {
  for (const [init, fault] of [
    [{}, { kind: 'forge', status: 562 }],
    [{}, { kind: 'cut' }],
    [{ method: 'PUT', body: 'x' }, { kind: 'partial', status: 502, code: 'bad_gateway' }],
    [{ method: 'POST', body: 'x', headers: { 'idempotency-key': 'k1' } }, { kind: 'forge', status: 561 }],
  ]) {
    relay.log.length = 0;
    const path = freshPath();
    relay.script.push(fault);
    assert.deepEqual(await call(client(), path, init), { count: 2 }, `${init.method ?? 'GET'} after ${fault.kind}`);
    assert.deepEqual(outcomes(), [fault.kind, 'ok']);
  }
  // at most once more per kind of failure: error, error → the relay's error
  relay.log.length = 0;
  relay.script.push({ kind: 'forge', status: 562 }, { kind: 'forge', status: 562 });
  const { error } = await call(client(), freshPath());
  assert.ok(error instanceof MteRelayError && error.code === 'relay_error' && error.status === 562, String(error));
  // an ordinary error of the relay is an ordinary response
  relay.script.push({ kind: 'dead', status: 404, code: 'not_found' });
  assert.deepEqual(await call(client(), freshPath()), { status: 404 });
});

test('relay_restart_563_drops_every_older_pair_in_one_pairing', async () => {
  const c = client();
  assert.deepEqual(await call(c, freshPath()), { count: 1 });
  relay.forgetPairs();
  const before = relay.pairings;
  relay.log.length = 0;
  // one GET: 563 on its (old) pair, then the resend on a fresh pair
  assert.deepEqual(await call(c, freshPath()), { count: 1 });
  assert.deepEqual(outcomes(), ['563', 'ok']);
  // the other old pair was dropped too: the next requests never meet a 563
  relay.log.length = 0;
  for (let i = 0; i < 3; i++) assert.deepEqual(await call(c, freshPath(), POST), { count: 1 });
  assert.deepEqual(outcomes(), ['ok', 'ok', 'ok']);
  assert.ok(relay.pairings - before <= 2, `re-paired in ${relay.pairings - before} pairing requests`);
});
