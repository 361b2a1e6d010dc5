// End to end against a running relay in front of the demo upstream (`pqrelay demo`).
// Runs only when PQRELAY_URL is set, e.g. PQRELAY_URL=http://localhost:8080 npm test.
// PQRELAY_RESTART, when set, is a shell command that restarts the relay (in-memory state lost);
// the restart test runs only then.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { b64decode, b64encode } from '../src/_bytes.js';
import { prepareRequest, relayFetch } from '../src/_fetch.js';
import { Relay } from '../src/_relay.js';
import { initMteRelayClient, MteRelayError, mteFetch } from '../src/index.js';

const RELAY = process.env.PQRELAY_URL;
const skip = RELAY ? false : 'PQRELAY_URL is not set (start `pqrelay demo` and set PQRELAY_URL=http://localhost:8080)';
if (skip) console.log(`# relay.test.mjs skipped: ${skip}`);

const body = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const settings = { encodeUrls: true, encodeHeaders: true };

test('relay_pairing_and_round_trips', { skip }, async (t) => {
  await initMteRelayClient({ relayUrl: RELAY, numberOfPairs: 3 });

  await t.test('get_headers_arrive_decoded', async () => {
    const wire = [];
    const res = await mteFetch(`${RELAY}/headers?q=1`, { headers: { authorization: 'Bearer secret', 'x-custom': 'yes' } }, { onWire: (w) => wire.push(w) });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const seen = await res.json();
    assert.equal(seen.method, 'GET');
    assert.equal(seen.path, '/headers');
    assert.equal(seen.query, 'q=1');
    assert.equal(seen.headers.authorization, 'Bearer secret');
    assert.equal(seen.headers['x-custom'], 'yes');
    assert.ok(!Object.keys(seen.headers).some((h) => h.startsWith('x-mte-')));
    const sent = wire.find((w) => w.direction === 'request');
    assert.ok(!sent.url.includes('headers'), 'URL is sealed');
    assert.equal(sent.headers.authorization, undefined, 'authorization is sealed');
  });

  await t.test('plain_url_and_listed_headers', async () => {
    const res = await mteFetch(`${RELAY}/headers`, { headers: { 'x-a': '1', 'x-b': '2' } }, { encodeUrls: false, encodeHeaders: ['x-a'] });
    const seen = await res.json();
    assert.equal(seen.headers['x-a'], '1');
    assert.equal(seen.headers['x-b'], '2');
  });

  await t.test('login_json_and_cookies', async () => {
    const ok = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: 'pw' }) });
    assert.equal(ok.status, 200);
    assert.equal((await ok.json()).user, 'ada');
    const denied = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: '' }) });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
  });

  for (const n of [0, 1, 65535, 65536, 65537, 1_000_000]) {
    await t.test(`upload_sized_${n}`, async () => {
      const plain = body(n);
      const progress = [];
      const res = await mteFetch(`${RELAY}/upload`, { method: 'POST', body: new Blob([plain]) }, { onUploadProgress: (p) => progress.push(p) });
      assert.deepEqual(await res.json(), { size: n, sha256: sha256(plain) });
      assert.deepEqual(progress.at(-1), { loaded: n, total: n });
    });
  }

  await t.test('upload_streaming', async () => {
    const plain = body(300_000);
    const stream = new ReadableStream({ start(c) { for (let o = 0; o < plain.length; o += 7000) c.enqueue(plain.subarray(o, o + 7000)); c.close(); } });
    const res = await mteFetch(`${RELAY}/upload`, { method: 'POST', body: stream, duplex: 'half' });
    assert.deepEqual(await res.json(), { size: plain.length, sha256: sha256(plain) });
  });

  await t.test('sse_events_arrive_one_by_one', async () => {
    const res = await mteFetch(`${RELAY}/events`);
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    const arrivals = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
      arrivals.push(Date.now());
    }
    assert.equal(text.match(/event: tick/g).length, 5);
    assert.ok(arrivals.length >= 5, 'each event decoded as it arrived');
    assert.ok(arrivals.at(-1) - arrivals[0] >= 600, 'events were not buffered until the end');
  });

  await t.test('concurrent_requests_share_a_bounded_pool', async () => {
    const relay = new Relay(new URL(RELAY).origin, { numberOfPairs: 2, maxPairs: 3 });
    const results = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const res = await relayFetch(relay, await prepareRequest(`${RELAY}/echo?msg=${i}`), settings);
        return (await res.json()).echo;
      }),
    );
    assert.deepEqual(results, Array.from({ length: 12 }, (_, i) => String(i)));
    assert.ok(relay._size <= 3 && relay._size >= 2, `pool size ${relay._size}`);
  });

  await t.test('invalid_client_id_566_rediscovers_invisibly', async () => {
    const relay = new Relay(new URL(RELAY).origin, { numberOfPairs: 1 });
    await relay.ready();
    const raw = b64decode(relay.token);
    raw[40] ^= 1; // break the MAC, keep the id
    relay.token = b64encode(raw);
    const res = await relayFetch(relay, await prepareRequest(`${RELAY}/echo?msg=again`), settings);
    assert.equal((await res.json()).echo, 'again');
    assert.notEqual(b64encode(b64decode(relay.token)), b64encode(raw));
  });
});

test('relay_restart_repairs_invisibly', { skip: skip || (!process.env.PQRELAY_RESTART && 'PQRELAY_RESTART is not set') }, async () => {
  await initMteRelayClient({ relayUrl: RELAY });
  assert.equal((await (await mteFetch(`${RELAY}/echo?msg=before`)).json()).echo, 'before');
  execSync(process.env.PQRELAY_RESTART, { stdio: 'inherit' });
  assert.equal((await (await mteFetch(`${RELAY}/echo?msg=after`)).json()).echo, 'after');
});

test('not_a_relay_is_reported', { skip: skip || (!process.env.PQRELAY_UPSTREAM_URL && 'PQRELAY_UPSTREAM_URL (the plain demo upstream) is not set') }, async () => {
  await assert.rejects(mteFetch(`${process.env.PQRELAY_UPSTREAM_URL}/echo`), (e) => e instanceof MteRelayError && e.code === 'not_a_relay');
});
