// A relay key rotation (docs/OPERATIONS.md) seen by this client, against the real relay: with
// RELAY_KEYS=K1,K0 clients pinned to K0 and to K1 both pair, and a client that trusted K0 on first
// use learns K1 from a confirmed pairing; once K0 is removed, a client pinned only to K0 gets a hard
// error naming it, while the one that followed the rotation keeps working.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { prepareRequest, relayFetch } from '../src/_fetch.js';
import { Relay } from '../src/_relay.js';
import { formatFingerprint, parseFingerprint } from '../src/_relay_key.js';
import { loadTrustedKeys, saveTrustedKeys } from '../src/_store.js';
import { skipReason as skip, startStack } from './_harness.mjs';
import { relayKeyFrom } from './_relay_side.mjs';

if (skip) console.log(`# rotation.test.mjs skipped: ${skip}`);

const K0 = 'rotation-test-key-K0-0123456789-abcdefghijklmnop';
const K1 = 'rotation-test-key-K1-0123456789-abcdefghijklmnop';
const fp = (value) => formatFingerprint(relayKeyFrom(value).keyId);

let stack;
before(async () => {
  if (!skip) stack = await startStack({ relayEnv: { RELAY_KEYS: `${K1},${K0}` } });
});
after(() => stack?.stop());

const pinned = (value) => new Relay(stack.relayUrl, { numberOfPairs: 1, pins: [parseFingerprint(fp(value))] });
async function echo(relay, msg) {
  const res = await relayFetch(relay, await prepareRequest(`${stack.relayUrl}/echo?msg=${msg}`), { encodeUrls: true, encodeHeaders: true });
  return (await res.json()).echo;
}

test('rotation_k1_current_k0_previous_then_k0_removed', { skip, timeout: 60_000 }, async () => {
  const origin = stack.relayUrl;
  const onK0 = pinned(K0);
  const onK1 = pinned(K1);
  assert.equal(await echo(onK0, 'k0'), 'k0');
  assert.equal(await echo(onK1, 'k1'), 'k1');
  assert.equal(onK0.fingerprint, fp(K0));
  assert.equal(onK1.fingerprint, fp(K1));
  assert.deepEqual(onK1.offered.map((k) => k.fingerprint), [fp(K1), fp(K0)], 'current key first');

  // trust on first use from before the rotation: only K0 stored
  saveTrustedKeys(origin, [fp(K0)]);
  const follower = new Relay(origin, { numberOfPairs: 1 });
  assert.equal(await echo(follower, 'tofu'), 'tofu');
  assert.equal(follower.fingerprint, fp(K0), 'it pairs with the key it trusts');
  assert.deepEqual(new Set(loadTrustedKeys(origin)), new Set([fp(K1), fp(K0)]), 'the confirmed answer announced K1');

  stack.relayEnv.RELAY_KEYS = K1;
  await stack.restartRelay();
  await assert.rejects(
    pinned(K0).ready(),
    (e) => e.code === 'relay_key_not_trusted' && e.message.includes(fp(K0)) && e.message.includes(fp(K1)),
  );
  const later = new Relay(origin, { numberOfPairs: 1 });
  assert.equal(await echo(later, 'after'), 'after');
  assert.equal(later.fingerprint, fp(K1));
});
