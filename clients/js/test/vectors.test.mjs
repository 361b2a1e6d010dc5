// Every case of every file in protocol/tests/vectors/ (see the README there), positive and
// negative. Client-side behaviour runs through the client's own modules; relay-only rules run
// through _relay_side.mjs, written from PROTOCOL.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesSource, recordPlaintexts } from '../src/_body.js';
import { b64decode, concat, utf8 } from '../src/_bytes.js';
import { bodyOpener, bodySealer, itemAad, openHeaders, openUrl, sealHeaders, sealUrl } from '../src/_exchange.js';
import { checkHeaderList, decodeHeaderBlock, encodeHeaderBlock, formatDiscoveryHeader, formatExchangeHeader, parseRelayHeader, parseRelayInfo, tokenId } from '../src/_headers.js';
import { encapsulationKey, ESEED_SIZE } from '../src/_kem.js';
import { completePair, decodePairingResponse, encodePairingRequest } from '../src/_pairing.js';
import { initialChainKey, ratchet } from '../src/_schedule.js';
import { importKey, nonce, PART_HEADERS, seal } from '../src/_seal.js';
import { encodedLength, plainLength } from '../src/_stream.js';
import * as relaySide from './_relay_side.mjs';

const DIR = new URL('../../../protocol/tests/vectors/', import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, DIR), 'utf8'));
const hex = bytesToHex;
const unhex = hexToBytes;
const sha = (bytes) => hex(sha256(bytes));
const body = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);

/** Vector `expect` kinds → the client's MteRelayError codes (relay-side helpers throw `kind`). */
const CLIENT_CODE = {
  decode_failure: 'decode_failed',
  framing_failure: 'framing_failed',
  invalid_header: 'invalid_header',
  unsupported_version: 'version_unsupported',
  forbidden_header: 'forbidden_header',
  headers_too_large: 'headers_too_large',
  invalid_pairing: 'pairing_failed',
};

/** Runs `fn` and checks it fails with the vector's kind. */
async function expectFailure(kind, fn) {
  await assert.rejects(
    async () => fn(),
    (e) => {
      assert.ok(e.kind === kind || (CLIENT_CODE[kind] && e.code === CLIENT_CODE[kind]), `expected ${kind}, got ${e.code ?? e.kind ?? e}: ${e.message}`);
      return true;
    },
  );
}

/** Runs one test per case of `file`; `check(case)` must handle every `expect` it can meet. */
function vectors(file, check) {
  const { cases } = load(file);
  assert.ok(cases.length > 0, `${file} has cases`);
  for (const c of cases) test(`${file.replace('.json', '')}: ${c.name} (${c.expect})`, () => check(c));
}

const DIRECTIONS = { request: 1, response: 2 };

/** An exchange context where `key` is the key of the vector's direction. */
async function contextOf(v) {
  const key = await importKey(unhex(v.key));
  const c = v.context;
  return {
    ctx: { id: unhex(c.client_id), pid: unhex(c.pair_id), counter: BigInt(c.counter), method: c.method, requestKey: key, responseKey: key },
    pos: { dir: DIRECTIONS[c.direction], flags: c.flags, status: c.status },
    target: c.target,
  };
}

const KNOWN = ['aad.json', 'body.json', 'client_id.json', 'headers.json', 'lengths.json', 'pairing.json', 'pairing_json.json', 'ratchet.json', 'relay_header.json', 'seal.json', 'state.json', 'url.json'];

test('every vector file is checked', () => {
  assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.json')).sort(), KNOWN);
});

vectors('aad.json', (v) => {
  const c = v.context;
  const ctx = { id: unhex(c.client_id), pid: unhex(c.pair_id), counter: BigInt(c.counter), method: c.method };
  const pos = { dir: DIRECTIONS[c.direction], flags: c.flags, status: c.status };
  assert.equal(hex(itemAad(ctx, pos, v.part, BigInt(v.index), v.final, c.target)), v.aad);
  assert.equal(hex(nonce(v.part, v.final, BigInt(v.index))), v.nonce);
});

vectors('body.json', async (v) => {
  const { ctx, pos } = await contextOf(v);
  const decode = async (encoded, pieces) => {
    const opener = bodyOpener(ctx, pos, { expectedLength: v.expected_plain_len });
    const out = [];
    for (const p of pieces) out.push(...(await opener.push(p)));
    opener.finish();
    return concat(...out);
  };
  if (v.expect !== 'success') return expectFailure(v.expect, () => decode(null, [unhex(v.encoded)]));

  const plain = body(v.plain_len);
  const sealer = bodySealer(ctx, pos);
  const records = [];
  const lengths = [];
  if (v.mode === 'sized') {
    for await (const { chunk, final } of recordPlaintexts(bytesSource(plain))) {
      lengths.push(chunk.length);
      records.push(await sealer.seal(chunk, final));
    }
    assert.equal(encodedLength(v.plain_len), v.encoded_len);
  } else {
    let o = 0;
    for (const [i, n] of v.records.entries()) {
      lengths.push(n);
      records.push(await sealer.seal(plain.subarray(o, o + n), i === v.records.length - 1));
      o += n;
    }
  }
  assert.deepEqual(lengths, v.records);
  const encoded = concat(...records);
  assert.equal(encoded.length, v.encoded_len);
  assert.equal(sha(encoded), v.encoded_sha256);
  if (v.encoded) assert.equal(hex(encoded), v.encoded);
  assert.equal(sha(await decode(encoded, [encoded])), v.plain_sha256);
  const bytewise = Array.from({ length: Math.ceil(encoded.length / 7) }, (_, i) => encoded.subarray(i * 7, i * 7 + 7));
  assert.equal(sha(await decode(encoded, bytewise)), v.plain_sha256);
});

vectors('client_id.json', (v) => {
  if (v.type === 'issue') {
    const { mac, token } = relaySide.issueToken(v.secret, unhex(v.client_id));
    assert.equal(hex(mac), v.mac);
    assert.equal(token, v.token);
    assert.equal(hex(tokenId(token)), v.client_id);
    return;
  }
  if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.verifyToken(v.secrets, v.token));
  const { id, tokenOut } = relaySide.verifyToken(v.secrets, v.token);
  assert.equal(hex(id), v.client_id);
  assert.equal(tokenOut, v.token_out);
  assert.equal(tokenOut !== v.token, v.resigned);
});

vectors('headers.json', async (v) => {
  const isRequest = v.direction === 'request';
  if (v.expect === 'success') {
    const headers = decodeHeaderBlock(v.json);
    assert.deepEqual(headers, v.headers);
    checkHeaderList(headers, isRequest);
    assert.equal(encodeHeaderBlock(headers), v.json);
    return;
  }
  return expectFailure(v.expect, () => checkHeaderList(decodeHeaderBlock(v.json), isRequest));
});

vectors('lengths.json', (v) => {
  const encoded = Number(v.encoded_len);
  if (v.expect === 'invalid_length') return assert.equal(plainLength(encoded), null);
  assert.equal(encodedLength(Number(v.plain_len)), encoded);
  assert.equal(plainLength(encoded), Number(v.plain_len));
});

const pairingCases = load('pairing.json').cases;

vectors('pairing.json', async (v) => {
  if (v.expect !== 'success') {
    if (v.side === 'relay') return expectFailure(v.expect, () => relaySide.relayEncapsulate(unhex(v.ek), new Uint8Array(ESEED_SIZE)));
    return expectFailure(v.expect, () => completePair({ pid: new Uint8Array(16), seed: unhex(v.seed) }, unhex(v.ct), new Uint8Array(16)));
  }
  const id = unhex(v.client_id);
  const pid = unhex(v.pair_id);
  assert.equal(hex(encapsulationKey(unhex(v.seed))), v.ek);
  const { ct, ss } = relaySide.relayEncapsulate(unhex(v.ek), unhex(v.eseed));
  assert.equal(hex(ct), v.ct);
  assert.equal(hex(ss), v.ss);
  assert.equal(hex(initialChainKey(ss, id, pid)), v.ck0);
  assert.equal(hex(completePair({ pid, seed: unhex(v.seed) }, unhex(v.ct), id)), v.ck0);
});

vectors('pairing_json.json', (v) => {
  if (v.type === 'request') {
    const text = v.body ?? ' '.repeat(v.body_len);
    if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.parsePairingRequest(text, v.max_pairs));
    const pairs = relaySide.parsePairingRequest(text, v.max_pairs);
    assert.deepEqual(pairs.map((p) => ({ ek_sha256: sha(p.ek), id: hex(p.pid) })), v.pairs);
    // The client's own encoder produces the compact form byte for byte when the seeds are known.
    const seeds = v.pairs.map((p) => pairingCases.find((c) => c.ek && c.seed && sha(unhex(c.ek)) === p.ek_sha256)?.seed);
    if (!text.includes(' ') && seeds.every(Boolean)) {
      assert.equal(encodePairingRequest(v.pairs.map((p, i) => ({ pid: unhex(p.id), seed: unhex(seeds[i]) }))), text);
    }
    return;
  }
  const sent = v.request_ids.map((id) => ({ pid: unhex(id), seed: new Uint8Array(32) }));
  if (v.expect !== 'success') return expectFailure(v.expect, () => decodePairingResponse(v.body, sent));
  const cts = decodePairingResponse(v.body, sent);
  assert.deepEqual(cts.map((ct, i) => ({ ct_sha256: sha(ct), id: v.request_ids[i] })), v.pairs);
});

vectors('ratchet.json', (v) => {
  if (v.type === 'chain') {
    let ck = unhex(v.ck0);
    for (const step of v.steps) {
      assert.equal(hex(ck), step.ck);
      const { requestKey, responseKey, nextChainKey } = ratchet(ck);
      assert.deepEqual([hex(requestKey), hex(responseKey), hex(nextChainKey)], [step.kq, step.ks, step.ck_next]);
      ck = nextChainKey;
    }
    return;
  }
  const state = { next: BigInt(v.state.next), ck: unhex(v.state.ck) };
  assert.equal(hex(relaySide.encodeState(state)), v.state.bytes);
  if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.acceptCounter(state, BigInt(v.counter), v.max_skip));
  const { kq, ks, after } = relaySide.acceptCounter(state, BigInt(v.counter), v.max_skip);
  assert.deepEqual([hex(kq), hex(ks)], [v.kq, v.ks]);
  assert.equal(hex(relaySide.encodeState(after)), v.state_after.bytes);
});

vectors('relay_header.json', (v) => {
  if (v.type === 'relay_info') {
    if (v.expect !== 'success') return expectFailure(v.expect, () => parseRelayInfo(v.value));
    const info = parseRelayInfo(v.value);
    assert.deepEqual({ chunk_size: info.chunkSize, max_pairs: info.maxPairs, max_skip: info.maxSkip, versions: info.versions }, v.parsed);
    return;
  }
  if (v.expect !== 'success') return expectFailure(v.expect, () => parseRelayHeader(v.value));
  const h = parseRelayHeader(v.value);
  const parsed = { client_id: hex(h.id), form: h.form, token: h.token };
  if (h.form === 'exchange') Object.assign(parsed, { counter: String(h.counter), flags: h.flags, pair_id: hex(h.pid) });
  assert.deepEqual(parsed, v.parsed);
  assert.equal(h.form === 'exchange' ? formatExchangeHeader(h) : formatDiscoveryHeader(h.token), v.value);
});

vectors('seal.json', async (v) => {
  const { ctx, pos, target } = await contextOf(v);
  if (v.part === 'url') {
    if (v.expect === 'success') {
      assert.equal(await sealUrl(ctx, pos, v.plaintext), v.sealed);
      assert.equal(await openUrl(ctx, pos, v.sealed), v.plaintext);
      return;
    }
    return expectFailure(v.expect, async () => relaySide.checkOriginForm(await openUrl(ctx, pos, v.sealed)));
  }
  if (v.expect !== 'success') return expectFailure(v.expect, () => openHeaders(ctx, pos, v.sealed, target));
  const raw = await seal(ctx.requestKey, nonce(PART_HEADERS, true, 0), utf8(v.plaintext), itemAad(ctx, pos, PART_HEADERS, 0, true, target));
  assert.deepEqual(raw, b64decode(v.sealed));
  assert.deepEqual(await openHeaders(ctx, pos, v.sealed, target), v.headers);
  if (encodeHeaderBlock(v.headers) === v.plaintext) assert.equal(await sealHeaders(ctx, pos, v.headers, target), v.sealed);
});

vectors('state.json', async (v) => {
  const id = unhex(v.client_id);
  const pid = unhex(v.pair_id);
  if (v.type === 'seal') {
    const state = relaySide.encodeState({ next: BigInt(v.next), ck: unhex(v.ck) });
    assert.equal(hex(state), v.state);
    assert.equal(hex(await relaySide.sealState(v.state_secret, unhex(v.salt), id, pid, state)), v.blob);
    return;
  }
  if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.openState(v.state_secret, id, pid, unhex(v.blob)));
  const state = await relaySide.openState(v.state_secret, id, pid, unhex(v.blob));
  assert.deepEqual([String(state.next), hex(state.ck)], [v.next, v.ck]);
});

vectors('url.json', (v) => {
  if (v.expect === 'success') return relaySide.checkOriginForm(v.url);
  return expectFailure(v.expect, () => relaySide.checkOriginForm(v.url));
});
