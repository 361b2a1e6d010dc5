// Pure parts without network (the vectors cover the byte-level details): base64url, wire headers, a full exchange sealed by one side and
// opened by the other, pairing messages, request normalisation and header selection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { b64decode, b64encode } from '../src/_bytes.js';
import { bodyOpener, bodySealer, openHeaders, openUrl, sealHeaders, sealUrl, startExchange } from '../src/_exchange.js';
import { FLAG_BODY, FLAG_HEADERS, FLAG_URL, formatDiscoveryHeader, formatExchangeHeader, parseRelayHeaderAs } from '../src/_headers.js';
import { encapsulate } from '../src/_kem.js';
import { completePair, decodePairingResponse, encodePairingRequest } from '../src/_pairing.js';
import { initialChainKey } from '../src/_schedule.js';
import { DIR_REQUEST, DIR_RESPONSE } from '../src/_seal.js';
import { prepareRequest, splitHeaders } from '../src/_fetch.js';

const filled = (n, v) => new Uint8Array(n).fill(v);
const token = b64encode(filled(48, 1));

test('b64_round_trip_and_strictness', () => {
  for (let n = 0; n < 40; n++) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n) & 0xff);
    assert.deepEqual(b64decode(b64encode(bytes)), bytes);
  }
  for (const bad of ['AA==', 'A', 'AB', 'AAB', 'A+AA', 'A/AA', 'AA AA', 'é']) assert.throws(() => b64decode(bad), SyntaxError, bad);
});

test('relay_header_format_parse_round_trip', () => {
  const pid = filled(16, 2);
  const value = formatExchangeHeader({ token, pid, counter: 18446744073709551615n, flags: 15 });
  assert.deepEqual(parseRelayHeaderAs(value, 'exchange'), { form: 'exchange', token, id: filled(16, 1), pid, counter: 18446744073709551615n, flags: 15 });
  assert.deepEqual(parseRelayHeaderAs(formatDiscoveryHeader(token), 'discovery'), { form: 'discovery', token, id: filled(16, 1) });
  assert.throws(() => parseRelayHeaderAs(value, 'discovery'), { code: 'invalid_header' });
});

test('pairing_then_exchange_round_trip_both_directions', async () => {
  const id = filled(16, 1);
  const pair = { pid: filled(16, 2), seed: filled(32, 3) };
  const request = JSON.parse(encodePairingRequest([pair]));
  // The relay's side, done here with the deterministic encapsulation.
  const { ct, ss } = encapsulate(b64decode(request.pairs[0].ek), filled(64, 4));
  const answer = JSON.stringify({ pairs: [{ id: request.pairs[0].id, ct: b64encode(ct) }] });
  const clientCk = completePair(pair, decodePairingResponse(answer, [pair])[0], id);
  assert.deepEqual(clientCk, initialChainKey(ss, id, pair.pid));

  const client = await startExchange({ id, pid: pair.pid, counter: 0n, chainKey: clientCk, method: 'POST' });
  const relay = await startExchange({ id, pid: pair.pid, counter: 0n, chainKey: initialChainKey(ss, id, pair.pid), method: 'POST' });
  assert.deepEqual(client.nextChainKey, relay.nextChainKey);

  const req = { dir: DIR_REQUEST, flags: FLAG_URL | FLAG_HEADERS | FLAG_BODY, status: 0 };
  const target = await sealUrl(client.context, req, '/api/x?y=1');
  assert.equal(await openUrl(relay.context, req, target), '/api/x?y=1');
  const eh = await sealHeaders(client.context, req, [['content-type', 'text/plain']], '');
  assert.deepEqual(await openHeaders(relay.context, req, eh, ''), [['content-type', 'text/plain']]);
  // Bound to the flags, the direction and (for plain URLs) the target.
  await assert.rejects(openHeaders(relay.context, { ...req, flags: FLAG_HEADERS | FLAG_BODY }, eh, ''), { code: 'decode_failed' });
  await assert.rejects(openHeaders(relay.context, { ...req, dir: DIR_RESPONSE }, eh, ''), { code: 'decode_failed' });
  const plainUrl = { ...req, flags: FLAG_HEADERS };
  const bound = await sealHeaders(client.context, plainUrl, [], '/api/x');
  assert.deepEqual(await openHeaders(relay.context, plainUrl, bound, '/api/x'), []);
  await assert.rejects(openHeaders(relay.context, plainUrl, bound, '/other'), { code: 'decode_failed' });

  const res = { dir: DIR_RESPONSE, flags: FLAG_HEADERS | FLAG_BODY, status: 201 };
  const record = await bodySealer(relay.context, res).seal(Uint8Array.of(1, 2, 3), true);
  const opener = bodyOpener(client.context, res, {});
  assert.deepEqual(await opener.push(record), [Uint8Array.of(1, 2, 3)]);
  opener.finish();
  await assert.rejects(bodyOpener(client.context, { ...res, status: 200 }, {}).push(record), { code: 'decode_failed' });
});

test('pairing_response_must_match_request', () => {
  const pair = { pid: filled(16, 2), seed: filled(32, 3) };
  const ct = b64encode(filled(1120, 0));
  assert.throws(() => decodePairingResponse(JSON.stringify({ pairs: [{ id: b64encode(filled(16, 9)), ct }] }), [pair]), { code: 'pairing_failed' });
  assert.throws(() => decodePairingResponse(JSON.stringify({ pairs: [] }), [pair]), { code: 'pairing_failed' });
  assert.throws(() => decodePairingResponse(JSON.stringify({ pairs: [{ id: b64encode(pair.pid), ct: 'AAAA' }] }), [pair]), { code: 'pairing_failed' });
});

test('prepare_request_normalises_bodies_and_headers', async () => {
  const json = await prepareRequest('https://r.example/api/a?b=1', { method: 'post', headers: { 'X-Thing': '1' }, body: '{"a":1}' });
  assert.equal(json.method, 'POST');
  assert.equal(json.url.pathname + json.url.search, '/api/a?b=1');
  assert.deepEqual(json.headers, [['content-type', 'text/plain;charset=UTF-8'], ['x-thing', '1']]);
  assert.equal(json.body.size, 7);

  const form = new FormData();
  form.append('f', new Blob(['hello']), 'h.txt');
  const multipart = await prepareRequest('https://r.example/upload', { method: 'POST', body: form });
  assert.match(multipart.headers.find(([n]) => n === 'content-type')[1], /^multipart\/form-data; boundary=/);
  assert.ok(multipart.body.size > 5 && multipart.body.replayable);

  const params = await prepareRequest('https://r.example/p', { method: 'POST', body: new URLSearchParams({ a: 'b c' }) });
  assert.equal(params.headers[0][1], 'application/x-www-form-urlencoded;charset=UTF-8');

  const stream = await prepareRequest('https://r.example/s', { method: 'PUT', body: new ReadableStream(), duplex: 'half', credentials: 'include' });
  assert.equal(stream.body.size, null);
  assert.equal(stream.body.replayable, false);
  assert.equal(stream.init.credentials, 'include');

  const get = await prepareRequest('https://r.example/g');
  assert.equal(get.body, null);
});

test('split_headers_always_seals_content_type', () => {
  const headers = [['content-type', 'a/b'], ['authorization', 'x'], ['accept', '*/*'], ['content-length', '3'], ['x-mte-relay', 'z']];
  assert.deepEqual(splitHeaders(headers, true), { sealed: headers.slice(0, 3), plain: [] });
  assert.deepEqual(splitHeaders(headers, false), { sealed: [headers[0]], plain: headers.slice(1, 3) });
  assert.deepEqual(splitHeaders(headers, ['Authorization']), { sealed: headers.slice(0, 2), plain: [headers[2]] });
});
