// End to end through the real relay: the test starts `pqrelay demo-upstream` and the relay
// (PQRELAY_BIN, memory state, DEMO on) on free loopback ports and talks to them with the client
// exactly as an application would. Runs whenever PQRELAY_BIN is set (`.ci/run` sets it).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { b64decode, b64encode } from '../src/_bytes.js';
import { prepareRequest, relayFetch } from '../src/_fetch.js';
import { parseRelayHeaderAs } from '../src/_headers.js';
import { Relay } from '../src/_relay.js';
import { formatFingerprint } from '../src/_relay_key.js';
import { loadToken, saveToken } from '../src/_store.js';
import { initMteRelayClient, MteOutcomeUnknownError, MteRelayError, mteFetch, relayFingerprint } from '../src/index.js';
import { RELAY_FP, skipReason as skip, startStack } from './_harness.mjs';

if (skip) console.log(`# relay.test.mjs skipped: ${skip}`);

const TIMEOUT = 60_000;
const body = (n) => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + (i >> 11)) % 251;
  return b;
};
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const settings = { encodeUrls: true, encodeHeaders: true };
const pidOf = (headers) => parseRelayHeaderAs(headers['x-mte-relay'], 'exchange');

/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;
let RELAY = '';

before(async () => {
  if (skip) return;
  stack = await startStack();
  RELAY = stack.relayUrl;
});
after(async () => {
  await stack?.stop();
});

test('relay_serves_this_bundle_and_demo', { skip, timeout: TIMEOUT }, async () => {
  // the relay embeds dist/ and demo/ at build time: a stale binary would test an old client
  const files = { '/public/mte-relay-browser.js': 'dist/mte-relay-browser.js', '/demo/': 'demo/index.html', '/demo/demo.js': 'demo/demo.js', '/demo/demo.css': 'demo/demo.css' };
  for (const [path, file] of Object.entries(files)) {
    const res = await fetch(`${RELAY}${path}`);
    assert.equal(res.status, 200, path);
    const served = Buffer.from(await res.arrayBuffer());
    assert.ok(served.equals(readFileSync(new URL(`../${file}`, import.meta.url))), `${path} differs from clients/js/${file}: rebuild the relay (cargo build -p pqrelay)`);
  }
});

test('pairing', { skip, timeout: TIMEOUT }, async () => {
  const relay = new Relay(RELAY, { numberOfPairs: 3 });
  await relay.ready();
  assert.equal(relay._size, 3);
  assert.equal(relay._idle.length, 3);
  assert.ok(relay.info.maxPairs >= 3, `max-pairs ${relay.info.maxPairs}`);
  assert.equal(b64decode(relay.token).length, 48);
  assert.equal(relay.fingerprint, RELAY_FP);
  assert.deepEqual(relay.offered.map((k) => k.fingerprint), [RELAY_FP]);
  // initMteRelayClient pairs the default pool at once and later calls reuse it
  await initMteRelayClient({ relayUrl: RELAY, numberOfPairs: 3 });
  assert.equal(relayFingerprint(RELAY), RELAY_FP);
  // pinned: the same key pairs, another is a hard error naming both
  await initMteRelayClient({ relayUrl: RELAY, numberOfPairs: 3, pins: [RELAY_FP] });
  assert.equal(relayFingerprint(), RELAY_FP);
  const other = formatFingerprint(new Uint8Array(32).fill(1));
  await assert.rejects(
    initMteRelayClient({ relayUrl: RELAY, pins: [other] }),
    (e) => e instanceof MteRelayError && e.code === 'relay_key_not_trusted' && e.message.includes(other) && e.message.includes(RELAY_FP),
  );
  await assert.rejects(initMteRelayClient({ pins: ['sha256:nope'] }), { code: 'relay_key_invalid' });
  await initMteRelayClient({ relayUrl: RELAY, pins: [] });
  await assert.rejects(
    initMteRelayClient({ relayUrl: stack.upstreamUrl }),
    (e) => e instanceof MteRelayError && e.code === 'not_a_relay' && /not a pqrelay/.test(e.message),
  );
});

test('round_trips', { skip, timeout: TIMEOUT }, async (t) => {
  await initMteRelayClient({ relayUrl: RELAY, numberOfPairs: 3 });

  for (const method of ['GET', 'POST', 'PUT', 'DELETE']) {
    await t.test(`${method.toLowerCase()}_headers_arrive_plain_upstream`, async () => {
      const wire = [];
      const withBody = method === 'POST' || method === 'PUT';
      const res = await mteFetch(
        `${RELAY}/headers?q=1&who=ada%20l`,
        {
          method,
          headers: { authorization: 'Bearer secret', 'x-custom': 'yes', ...(withBody ? { 'content-type': 'application/json' } : {}) },
          body: withBody ? JSON.stringify({ hello: method }) : undefined,
        },
        { onWire: (w) => wire.push(w) },
      );
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /application\/json/);
      const seen = await res.json();
      assert.equal(seen.method, method);
      assert.equal(seen.path, '/headers');
      assert.equal(seen.query, 'q=1&who=ada%20l');
      assert.equal(seen.headers.authorization, 'Bearer secret');
      assert.equal(seen.headers['x-custom'], 'yes');
      if (withBody) {
        assert.equal(seen.headers['content-type'], 'application/json');
        assert.equal(seen.headers['content-length'], String(JSON.stringify({ hello: method }).length));
      }
      assert.ok(!Object.keys(seen.headers).some((h) => h.startsWith('x-mte-')), 'no x-mte-* upstream');
      const sent = wire.find((w) => w.direction === 'request');
      assert.equal(sent.method, method);
      assert.ok(!sent.url.includes('headers') && !sent.url.includes('?'), 'URL is sealed');
      assert.equal(sent.headers.authorization, undefined, 'authorization is sealed');
      assert.equal(sent.headers['x-custom'], undefined, 'x-custom is sealed');
      assert.ok(wire.some((w) => w.direction === 'response' && w.status === 200));
    });
  }

  await t.test('plain_url_and_listed_headers', async () => {
    const wire = [];
    const res = await mteFetch(`${RELAY}/headers?plain=1`, { headers: { 'x-a': '1', 'x-b': '2' } }, { encodeUrls: false, encodeHeaders: ['x-a'], onWire: (w) => wire.push(w) });
    const seen = await res.json();
    assert.equal(seen.query, 'plain=1');
    assert.equal(seen.headers['x-a'], '1');
    assert.equal(seen.headers['x-b'], undefined, 'only sealed headers speak for the client: the relay drops plain ones (§9.2)');
    const sent = wire.find((w) => w.direction === 'request');
    assert.equal(new URL(sent.url).pathname, '/headers');
    assert.equal(sent.headers['x-a'], undefined);
    assert.equal(sent.headers['x-b'], '2');
  });

  await t.test('empty_bodies_keep_their_framing', async () => {
    // issue 19: a POST without a body (or with an empty one) reaches the upstream with
    // content-length: 0 and no invented content-type; the wire request has no flag body.
    for (const init of [{ method: 'POST' }, { method: 'POST', body: new Uint8Array(0) }, { method: 'PATCH', body: new Blob([]) }]) {
      const wire = [];
      const res = await mteFetch(`${RELAY}/headers`, init, { onWire: (w) => wire.push(w) });
      const seen = await res.json();
      assert.equal(seen.method, init.method);
      assert.equal(seen.headers['content-length'], '0', JSON.stringify(seen.headers));
      assert.equal(seen.headers['content-type'], undefined);
      assert.equal(seen.headers['transfer-encoding'], undefined);
      const sent = wire.find((w) => w.direction === 'request');
      assert.equal(pidOf(sent.headers).flags & 0x04, 0, 'no flag body');
      assert.equal(sent.headers['content-type'], undefined);
    }
    const del = await (await mteFetch(`${RELAY}/headers`, { method: 'DELETE' })).json();
    assert.equal(del.headers['content-length'], undefined, 'a DELETE without a body has no content-length, as plain');
  });

  await t.test('login_json_and_cookies', async () => {
    const ok = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: 'pw' }) });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { message: 'Welcome, ada!', user: 'ada' });
    const denied = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: '' }) });
    assert.equal(denied.status, 401);
    await denied.body?.cancel();
    const bad = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
    assert.equal(bad.status, 400);
    await bad.body?.cancel();
  });

  await t.test('upstream_404_stays_a_response', async () => {
    const res = await mteFetch(`${RELAY}/no/such/path`);
    assert.equal(res.status, 404);
    assert.equal((await res.json()).path, '/no/such/path');
  });
});

test('uploads', { skip, timeout: TIMEOUT }, async (t) => {
  const relay = new Relay(RELAY, { numberOfPairs: 2 });
  for (const n of [0, 1, 65535, 65536, 65537, 5 * 1024 * 1024]) {
    const plain = body(n);
    const expected = { size: n, sha256: sha256(plain) };

    await t.test(`sized_${n}`, async () => {
      const progress = [];
      const wire = [];
      const res = await relayFetch(relay, await prepareRequest(`${RELAY}/upload`, { method: 'POST', body: new Blob([plain]) }), {
        ...settings,
        onUploadProgress: (p) => progress.push(p),
        onWire: (w) => wire.push(w),
      });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), expected);
      assert.deepEqual(progress.at(-1), { loaded: n, total: n });
      const flags = pidOf(wire.find((w) => w.direction === 'request').headers).flags;
      // An empty sized body keeps its framing: no body flag, content-length 0 (§9.2).
      assert.equal(flags & 0x0c, n === 0 ? 0 : 0x04, `sized body flags ${flags}`);
    });

    await t.test(`streaming_${n}`, async () => {
      const piece = 7000;
      const stream = new ReadableStream({
        start(c) {
          for (let o = 0; o < plain.length; o += piece) c.enqueue(plain.slice(o, o + piece));
          c.close();
        },
      });
      const wire = [];
      const res = await relayFetch(relay, await prepareRequest(`${RELAY}/upload`, { method: 'POST', body: stream, duplex: 'half' }), { ...settings, onWire: (w) => wire.push(w) });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), expected);
      const flags = pidOf(wire.find((w) => w.direction === 'request').headers).flags;
      assert.equal(flags & 0x0c, 0x0c, `streaming body flags ${flags}`);
    });
  }
});

test('sse_events_arrive_one_by_one', { skip, timeout: TIMEOUT }, async () => {
  const started = Date.now();
  const res = await mteFetch(`${RELAY}/events`, undefined, { relayUrl: RELAY });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = []; // [arrival ms since the request, event text]
  let buffered = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buffered += value;
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      events.push([Date.now() - started, buffered.slice(0, end)]);
      buffered = buffered.slice(end + 2);
    }
  }
  assert.equal(events.length, 5, JSON.stringify(events));
  assert.ok(events.every(([, e]) => /event: tick/.test(e)));
  const times = events.map(([ms]) => ms);
  for (let i = 1; i < times.length; i++) {
    assert.ok(times[i] - times[i - 1] >= 50, `event ${i} arrived ${times[i] - times[i - 1]} ms after the previous one (times ${times})`);
  }
  assert.ok(times.at(-1) - times[0] >= 700, `events spread over ${times.at(-1) - times[0]} ms`);
});

test('pool_grows_with_one_exchange_per_pair', { skip, timeout: TIMEOUT }, async () => {
  // /events takes ~800 ms, so overlapping exchanges on one pair would show as sends < 700 ms apart.
  const relay = new Relay(RELAY, { numberOfPairs: 2, maxPairs: 3 });
  await relay.ready();
  assert.equal(relay._size, 2);
  const t0 = Date.now();
  const sends = []; // { pid, counter, at, done }
  await Promise.all(
    Array.from({ length: 12 }, async () => {
      let entry;
      const res = await relayFetch(relay, await prepareRequest(`${RELAY}/events`), {
        ...settings,
        onWire: (w) => {
          if (w.direction !== 'request') return;
          const h = pidOf(w.headers);
          entry = { pid: b64encode(h.pid), counter: h.counter, at: Date.now() - t0 };
          sends.push(entry);
        },
      });
      assert.equal((await res.text()).match(/event: tick/g).length, 5);
      entry.done = Date.now() - t0;
    }),
  );
  assert.equal(relay._size, 3, 'the pool grew from 2 to its bound of 3');
  assert.equal(sends.length, 12);
  const byPid = Map.groupBy ? Map.groupBy(sends, (s) => s.pid) : sends.reduce((m, s) => m.set(s.pid, [...(m.get(s.pid) ?? []), s]), new Map());
  assert.equal(byPid.size, 3, 'three pairs carried the requests');
  for (const list of byPid.values()) {
    list.sort((a, b) => a.at - b.at);
    for (let i = 1; i < list.length; i++) {
      assert.equal(list[i].counter, list[i - 1].counter + 1n, 'counters move on by one per exchange');
      assert.ok(list[i].at >= list[i - 1].at + 700, `pair reused while busy: ${JSON.stringify(list, (k, v) => (typeof v === 'bigint' ? Number(v) : v))}`);
    }
  }
  // 12 exchanges of ≥ 800 ms on at most 3 pairs: at least 4 rounds
  assert.ok(Math.max(...sends.map((s) => s.done)) >= 3000, 'no more than 3 exchanges ran at once');
});

test('invalid_client_id_566_rediscovers_invisibly', { skip, timeout: TIMEOUT }, async () => {
  const relay = new Relay(RELAY, { numberOfPairs: 1 });
  await relay.ready();
  const oldId = b64encode(relay.id);
  const raw = b64decode(relay.token);
  raw[40] ^= 1; // break the MAC, keep the id
  const corrupted = b64encode(raw);
  relay.token = corrupted;
  saveToken(relay.origin, corrupted); // the stored copy too: re-discovery sends it
  const statuses = [];
  const res = await relayFetch(relay, await prepareRequest(`${RELAY}/echo?msg=again`), { ...settings, onWire: (w) => w.direction === 'response' && statuses.push(w.status) });
  assert.equal((await res.json()).echo, 'again');
  assert.notEqual(relay.token, corrupted);
  assert.notEqual(b64encode(relay.id), oldId, 'a token that does not verify gets a fresh id');
  assert.equal(loadToken(relay.origin), relay.token, 'the new token is stored');
  // and it keeps working
  assert.equal((await (await relayFetch(relay, await prepareRequest(`${RELAY}/echo?msg=later`), settings)).json()).echo, 'later');
});

test('relay_restart_repairs_invisibly', { skip, timeout: TIMEOUT }, async () => {
  // runs last: it restarts the relay process (memory state lost)
  await initMteRelayClient({ relayUrl: RELAY, numberOfPairs: 2 });
  const before = await mteFetch(`${RELAY}/echo?msg=before`);
  assert.equal((await before.json()).echo, 'before');
  await stack.restartRelay();
  // A POST on a pair the relay forgot gets a plain (unauthenticated) 563: the client cannot tell it
  // from a forged error after the POST ran, so the caller learns that the outcome is unknown ...
  await assert.rejects(mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' }), (e) => e instanceof MteOutcomeUnknownError && e.status === 563);
  // ... and every pair paired no later than that one is dropped (§11.1): the next POST runs.
  const login = await mteFetch(`${RELAY}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'ada', password: 'pw' }) });
  assert.equal(login.status, 200);
  await login.body.cancel();
  await stack.restartRelay();
  // one at a time first: every idle pair of the pool is stale now, and each request must be
  // retried on the pair re-paired for it, not on the next stale one
  for (const m of ['after', 'then']) assert.equal((await (await mteFetch(`${RELAY}/echo?msg=${m}`)).json()).echo, m);
  const results = await Promise.all(['after', 'and', 'again'].map(async (m) => (await (await mteFetch(`${RELAY}/echo?msg=${m}`)).json()).echo));
  assert.deepEqual(results, ['after', 'and', 'again']);
  const up = await mteFetch(`${RELAY}/upload`, { method: 'POST', body: new Blob([body(70_000)]) });
  assert.deepEqual(await up.json(), { size: 70_000, sha256: sha256(body(70_000)) });
});
