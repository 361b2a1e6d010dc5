// A pairing refused with 429 (`rate_limited`, `Retry-After: 1`) is sent again after the wait, at
// most PAIRING_ATTEMPTS attempts in all (PROTOCOL.md §11.1), against the real relay started with
// PAIR_RATE_PER_IP=1; and how Retry-After is read.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_RETRY_AFTER_MS, PAIRING_ATTEMPTS, Relay, retryAfterMs } from '../src/_relay.js';
import { initMteRelayClient, MteRelayError, mteFetch } from '../src/index.js';
import { skipReason as skip, startStack } from './_harness.mjs';

if (skip) console.log(`# busy.test.mjs skipped: ${skip}`);

const TIMEOUT = 60_000;

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  if (skip) return;
  stack = await startStack({ relayEnv: { PAIR_RATE_PER_IP: '1', PAIR_RATE_PER_CLIENT: '0' } });
});
after(async () => {
  await stack?.stop();
});

test('retry_after_is_delta_seconds_capped_and_one_second_otherwise', () => {
  assert.equal(PAIRING_ATTEMPTS, 3);
  assert.equal(MAX_RETRY_AFTER_MS, 10_000);
  assert.equal(retryAfterMs(429, '2'), 2000);
  assert.equal(retryAfterMs(503, ' 0 '), 0);
  assert.equal(retryAfterMs(503, '3600'), MAX_RETRY_AFTER_MS);
  assert.equal(retryAfterMs(429, null), 1000);
  assert.equal(retryAfterMs(503, 'Fri, 04 Dec 2026 10:00:00 GMT'), 1000);
  assert.equal(retryAfterMs(429, '1.5'), 1000);
  assert.equal(retryAfterMs(500, '1'), null);
  assert.equal(retryAfterMs(400, null), null);
});

test('a_pairing_refused_with_429_is_sent_again_after_retry_after', { skip, timeout: TIMEOUT }, async () => {
  const first = new Relay(stack.relayUrl, { numberOfPairs: 1 });
  await first.ready(); // this second's one pairing
  const events = [];
  const started = Date.now();
  await initMteRelayClient({ relayUrl: stack.relayUrl, numberOfPairs: 1, onWire: (info) => events.push(info) });
  const elapsed = Date.now() - started;
  const waits = events.filter((e) => e.direction === 'retry-after');
  assert.equal(waits.length, 1, JSON.stringify(waits));
  const [w] = waits;
  assert.deepEqual([w.request, w.status, w.attempt], ['pairing', 429, 1]);
  assert.ok(w.waitMs >= 1000 && w.waitMs <= 1250, `Retry-After: 1 plus jitter: ${w.waitMs}`);
  assert.ok(elapsed >= 900, `${elapsed} ms`);
  const res = await mteFetch(`${stack.relayUrl}/echo?msg=after-429`);
  assert.equal(res.status, 200);
  await res.arrayBuffer();
});

test('a_pairing_refused_every_time_fails_after_three_attempts', { skip, timeout: TIMEOUT }, async () => {
  // Pairing requests from this IP as fast as the relay answers: every rate window's one pairing goes
  // to them (the relay counts them before it reads anything else). The client starts once one of
  // them was refused, so the current window is already spent.
  let stop = false;
  let spent;
  const windowSpent = new Promise((resolve) => { spent = resolve; });
  const hammer = async () => {
    while (!stop) {
      const res = await fetch(`${stack.relayUrl}/api/mte-pair`, { method: 'POST' });
      await res.arrayBuffer();
      if (res.status === 429) spent();
    }
  };
  const hammers = [hammer(), hammer()];
  const events = [];
  await windowSpent;
  const relay = new Relay(stack.relayUrl, { numberOfPairs: 1, onWire: (info) => events.push(info) });
  try {
    await assert.rejects(relay.ready(), (e) => {
      assert.ok(e instanceof MteRelayError, String(e));
      assert.equal(e.code, 'pairing_failed');
      assert.equal(e.status, 429);
      return true;
    });
  } finally {
    stop = true;
    await Promise.all(hammers);
  }
  const waits = events.filter((e) => e.direction === 'retry-after').map((e) => [e.request, e.status, e.attempt]);
  assert.deepEqual(waits, [
    ['pairing', 429, 1],
    ['pairing', 429, 2],
  ]);
  assert.equal(relay.busyRetries, PAIRING_ATTEMPTS - 1);
});
