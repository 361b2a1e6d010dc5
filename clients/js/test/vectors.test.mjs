// Every case of every file in protocol/tests/vectors/ (see the README there), positive and
// negative. Client-side behaviour runs through the client's own modules; relay-only rules run
// through _relay_side.mjs, written from PROTOCOL.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesSource, recordPlaintexts } from '../src/_body.js';
import { b64decode, b64encode, concat, utf8 } from '../src/_bytes.js';
import { errorTag, errorTagMessage, VERDICTS, verifyErrorReply } from '../src/_error_tag.js';
import { bodyOpener, bodySealer, itemAad, openHeaders, openUrl, sealHeaders, sealUrl } from '../src/_exchange.js';
import { checkHeaderList, decodeHeaderBlock, encodeHeaderBlock, formatDiscoveryHeader, formatExchangeHeader, parseRelayHeader, parseRelayInfo, tokenId } from '../src/_headers.js';
import { parsePairingResponse, startPairing } from '../src/_pairing.js';
import { chooseRelayKey, formatFingerprint, parseFingerprint, parseRelayKeys, relayKeyOfEntry } from '../src/_relay_key.js';
import { ratchet } from '../src/_schedule.js';
import { importKey, nonce, PART_HEADERS, seal } from '../src/_seal.js';
import { encodedLength, plainLength } from '../src/_stream.js';
import * as relaySide from './_relay_side.mjs';

const DIR = new URL('../../../protocol/tests/vectors/', import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, DIR), 'utf8'));
const hex = bytesToHex;
const unhex = hexToBytes;
const sha = (bytes) => hex(sha256(bytes));
const body = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);

/**
 * Vector `expect` kinds → the client's MteRelayError codes. Relay-side helpers throw `kind`; where
 * one client code covers several kinds, the client's error carries the kind as `reason`.
 */
const CLIENT_CODE = {
  decode_failure: 'decode_failed',
  framing_failure: 'framing_failed',
  invalid_header: 'invalid_header',
  unsupported_version: 'version_unsupported',
  invalid_method: 'invalid_method',
  forbidden_header: 'forbidden_header',
  headers_too_large: 'headers_too_large',
  invalid_relay_info: 'relay_info_invalid',
  unsupported_relay: 'version_unsupported',
  invalid_relay_key: 'relay_key_invalid',
  untrusted_relay_key: 'relay_key_not_trusted',
  pairing_not_confirmed: 'pairing_not_confirmed',
  unauthenticated_error: 'error_unauthenticated',
};

/** Runs `fn` and checks it fails with the vector's kind (`code` overrides the client code). */
async function expectFailure(kind, fn, code = CLIENT_CODE[kind]) {
  await assert.rejects(
    async () => fn(),
    (e) => {
      assert.ok(e.kind === kind || e.reason === kind || (code && e.code === code), `expected ${kind}, got ${e.code ?? e.kind ?? e}: ${e.message}`);
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

/** A relay key as the client sees it after discovery. */
const clientKey = (value) => relayKeyOfEntry(relaySide.relayKeyFrom(value).entry);

/** The client's pairing of a vector's client inputs. */
const pairingOf = (v) =>
  startPairing({ id: unhex(v.client_id), relayKey: clientKey(v.relay_key_value), eseedR: unhex(v.eseed_r), seedE: unhex(v.seed_e), pairIds: v.pair_ids.map(unhex) });

/** The client's parse of a pairing answer, failing as `complete` would. */
function parseAnswer(text) {
  const answer = parsePairingResponse(text);
  if (!answer) throw Object.assign(new Error('malformed pairing answer'), { code: 'pairing_not_confirmed' });
  return answer;
}

const KNOWN = [
  'aad.json',
  'body.json',
  'client_id.json',
  'error_tag.json',
  'headers.json',
  'lengths.json',
  'pairing.json',
  'pairing_json.json',
  'ratchet.json',
  'relay_header.json',
  'relay_key.json',
  'seal.json',
  'state.json',
  'url.json',
];

test('every vector file is checked', () => {
  assert.deepEqual(readdirSync(DIR).filter((f) => f.endsWith('.json')).sort(), KNOWN);
  for (const f of KNOWN) assert.equal(load(f).version, 2, `${f} is version 2`);
});

vectors('aad.json', (v) => {
  const c = v.context;
  const ctx = { id: unhex(c.client_id), pid: unhex(c.pair_id), counter: BigInt(c.counter), method: c.method };
  const pos = { dir: DIRECTIONS[c.direction], flags: c.flags, status: c.status };
  if (v.expect !== 'success') return expectFailure(v.expect, () => itemAad(ctx, pos, v.part, BigInt(v.index), v.final, c.target));
  assert.equal(hex(itemAad(ctx, pos, v.part, BigInt(v.index), v.final, c.target)), v.aad);
  assert.equal(hex(nonce(v.part, v.final, BigInt(v.index))), v.nonce);
});

vectors('body.json', async (v) => {
  const { ctx, pos } = await contextOf(v);
  const decode = async (pieces) => {
    const opener = bodyOpener(ctx, pos, { expectedLength: v.expected_plain_len });
    const out = [];
    for (const p of pieces) out.push(...(await opener.push(p)));
    opener.finish();
    return concat(...out);
  };
  if (v.expect !== 'success') return expectFailure(v.expect, () => decode([unhex(v.encoded)]));

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
  assert.equal(sha(await decode([encoded])), v.plain_sha256);
  const bytewise = Array.from({ length: Math.ceil(encoded.length / 7) }, (_, i) => encoded.subarray(i * 7, i * 7 + 7));
  assert.equal(sha(await decode(bytewise)), v.plain_sha256);
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

vectors('error_tag.json', (v) => {
  const fields = { id: unhex(v.client_id), pid: unhex(v.pair_id), counter: BigInt(v.counter), status: v.status };
  const ke = unhex(v.ke);
  if (v.type === 'tag') {
    const f = { ...fields, code: v.code, verdict: v.verdict };
    if (v.expect !== 'success') return expectFailure(v.expect, () => errorTag(ke, f));
    assert.equal(hex(errorTagMessage(f)), v.message);
    assert.equal(hex(errorTag(ke, f)), v.tag);
    assert.equal(b64encode(errorTag(ke, f)), v.tag_header);
    assert.equal(VERDICTS.indexOf(v.verdict), v.verdict_byte);
    return;
  }
  const reply = { ...fields, code: v.code, verdict: v.verdict, tag: v.tag_header };
  if (v.expect !== 'success') return expectFailure(v.expect, () => verifyErrorReply(ke, reply));
  assert.equal(verifyErrorReply(ke, reply), v.verdict_out);
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

vectors('pairing.json', async (v) => {
  const relayKeys = v.relay_key_values?.map((value) => relaySide.relayKeyFrom(value));
  const id = unhex(v.client_id);
  if (v.type === 'client') {
    return expectFailure(v.expect, () => {
      try {
        pairingOf(v).complete(v.response_body);
      } catch (e) {
        assert.equal(e.reason, v.reason, e.message);
        assert.ok(e.message.includes(formatFingerprint(clientKey(v.relay_key_value).id)), 'the error names the fingerprint');
        throw e;
      }
    });
  }
  if (v.type === 'relay') {
    const answer = () => relaySide.answerPairing(relayKeys, id, relaySide.parsePairingRequest(v.request_body, v.max_pairs), unhex(v.eseed_e));
    if (v.expect !== 'success') return expectFailure(v.expect, answer);
    assert.equal(answer().body, v.response_body);
    return;
  }
  // A whole pairing, both sides.
  assert.deepEqual(relayKeys.map((k) => hex(k.keyId)), v.relay_key_ids);
  const pairing = pairingOf(v);
  assert.equal(hex(pairing.relayKey.id), v.key_id);
  assert.equal(hex(pairing.relayKey.id.slice(0, 8)), v.kid);
  assert.equal(pairing.body, v.request_body);
  const sent = JSON.parse(pairing.body);
  assert.equal(sha(b64decode(sent.ct)), v.ct_r_sha256);
  assert.equal(sha(b64decode(sent.ek)), v.ek_e_sha256);

  const request = relaySide.parsePairingRequest(v.request_body, v.max_pairs);
  const relay = relaySide.answerPairing(relayKeys, id, request, unhex(v.eseed_e));
  assert.deepEqual(
    [hex(relay.ssR), hex(relay.ssE), sha(relay.ctE), hex(relay.th), hex(relay.prk), hex(relay.root), hex(relay.kc), hex(relay.confirm), hex(relay.kid)],
    [v.ss_r, v.ss_e, v.ct_e_sha256, v.th, v.prk, v.root, v.kc, v.confirm, v.kid],
  );
  assert.deepEqual(relay.chainKeys.map(hex), v.ck0);
  assert.equal(relay.body, v.response_body);

  const { pairs, keys } = pairing.complete(v.response_body);
  assert.deepEqual(pairs.map((p) => hex(p.pid)), v.pair_ids);
  assert.deepEqual(pairs.map((p) => hex(p.chainKey)), v.ck0);
  assert.deepEqual(keys.map(hex), v.relay_key_ids);
});

vectors('pairing_json.json', (v) => {
  if (v.type === 'request') {
    const text = v.body ?? ' '.repeat(v.body_len);
    if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.parsePairingRequest(text, v.max_pairs));
    const r = relaySide.parsePairingRequest(text, v.max_pairs);
    assert.deepEqual([hex(r.keyId), sha(r.ctR), sha(r.ekE), r.pids.map(hex)], [v.key_id, v.ct_sha256, v.ek_sha256, v.pair_ids]);
    return;
  }
  // A client reports every malformed answer as pairing_not_confirmed (vectors README).
  if (v.expect !== 'success') return expectFailure(v.expect, () => parseAnswer(v.body), 'pairing_not_confirmed');
  const answer = parseAnswer(v.body);
  assert.deepEqual([sha(answer.ctE), answer.keys.map(hex), hex(answer.confirm)], [v.ct_sha256, v.key_ids, v.confirm]);
});

vectors('ratchet.json', (v) => {
  if (v.type === 'chain') {
    let ck = unhex(v.ck0);
    for (const step of v.steps) {
      assert.equal(hex(ck), step.ck);
      const { requestKey, responseKey, errorKey, nextChainKey } = ratchet(ck);
      assert.deepEqual([hex(requestKey), hex(responseKey), hex(errorKey), hex(nextChainKey)], [step.kq, step.ks, step.ke, step.ck_next]);
      ck = nextChainKey;
    }
    return;
  }
  if (v.type === 'retry_rule') {
    if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.retryRule(BigInt(v.counter), BigInt(v.e)));
    return relaySide.retryRule(BigInt(v.counter), BigInt(v.e));
  }
  const state = { e: BigInt(v.state.e), ck: unhex(v.state.ck), kid: unhex(v.state.kid) };
  assert.equal(hex(relaySide.encodeState(state)), v.state.bytes);
  let result;
  try {
    result = relaySide.acceptCounter(state, BigInt(v.counter), v.max_skip, v.retry);
    assert.equal(v.expect, 'success');
  } catch (error) {
    assert.equal(error.kind, v.expect, error.message);
    result = error.result; // retry_refused: committed first
  }
  if (v.keys) {
    assert.deepEqual([hex(result.keys.kq), hex(result.keys.ks), hex(result.keys.ke)], [v.keys.kq, v.keys.ks, v.keys.ke]);
    assert.equal(hex(relaySide.encodeState(result.after)), v.state_after.bytes);
  } else assert.equal(result, undefined);
});

vectors('relay_header.json', async (v) => {
  const parsedOf = (h) => {
    const parsed = { client_id: hex(h.id), form: h.form, token: h.token };
    if (h.form === 'exchange') Object.assign(parsed, { counter: String(h.counter), flags: h.flags, pair_id: hex(h.pid) });
    return parsed;
  };
  switch (v.type) {
    case 'relay_header':
    case 'relay_header_response': {
      const options = { response: v.type === 'relay_header_response' };
      if (v.expect !== 'success') return expectFailure(v.expect, () => parseRelayHeader(v.value, options));
      const h = parseRelayHeader(v.value, options);
      assert.deepEqual(parsedOf(h), v.parsed);
      assert.equal(h.form === 'exchange' ? formatExchangeHeader(h) : formatDiscoveryHeader(h.token), v.value);
      return;
    }
    case 'pairing_form':
    case 'exchange_form': {
      const form = v.type === 'pairing_form' ? 'discovery' : 'exchange';
      const check = () => {
        if (parseRelayHeader(v.value).form !== form) throw relaySide.fail('invalid_header');
      };
      return v.expect === 'success' ? check() : expectFailure(v.expect, check);
    }
    case 'request_fields': {
      // relay side: exactly one field of each header (§9.1)
      const check = () => {
        if (v.fields.length === 1) return;
        throw relaySide.fail(v.fields.length === 0 && v.header === 'x-mte-relay' ? 'client_id_missing' : 'invalid_header');
      };
      return v.expect === 'success' ? check() : expectFailure(v.expect, check);
    }
    case 'relay_info': {
      if (v.expect !== 'success') return expectFailure(v.expect, () => parseRelayInfo(v.value));
      const info = parseRelayInfo(v.value);
      assert.deepEqual({ max_pairs: info.maxPairs, versions: info.versions }, v.parsed);
      return;
    }
    case 'relay_info_encode':
      assert.equal(`versions=2;max-pairs=${v.max_pairs};chunk-size=65536;max-skip=16`, v.value);
      return parseRelayInfo(v.value);
    case 'relay_keys': {
      if (v.expect !== 'success') return expectFailure(v.expect, () => parseRelayKeys(v.value));
      const keys = parseRelayKeys(v.value);
      assert.deepEqual(keys.map((k) => hex(k.id)), v.key_ids);
      assert.deepEqual(keys.map((k) => k.fingerprint), v.fingerprints);
      return;
    }
    case 'choose': {
      const choose = () => chooseRelayKey(parseRelayKeys(v.value), v.trusted.map(parseFingerprint));
      if (v.expect !== 'success') {
        return expectFailure(v.expect, () => {
          try {
            choose();
          } catch (e) {
            assert.deepEqual(e.trusted, v.trusted, 'the error names the trusted fingerprints');
            for (const fp of [...v.trusted, ...parseRelayKeys(v.value).map((k) => k.fingerprint)]) assert.ok(e.message.includes(fp), `message names ${fp}`);
            throw e;
          }
        });
      }
      assert.equal(choose().fingerprint, v.chosen);
      return;
    }
    default:
      assert.fail(`unknown case type ${v.type}`);
  }
});

vectors('relay_key.json', (v) => {
  switch (v.type) {
    case 'value':
    case 'client_id_secret': {
      const derive = () => (v.type === 'value' ? relaySide.relayKeyFrom(v.value) : relaySide.relayKeyFrom(v.secret, { fromSecret: true }));
      if (v.expect !== 'success') return expectFailure(v.expect, derive);
      const k = derive();
      assert.deepEqual(
        [hex(k.seed), sha(k.publicKey), sha(k.entry), hex(k.keyId), formatFingerprint(k.keyId), hex(k.kid)],
        [v.seed, v.pk_sha256, v.entry_sha256, v.key_id, v.fingerprint, v.kid],
      );
      if (v.entry) assert.equal(b64encode(k.entry), v.entry);
      // the client parses the relay's entry to the same id
      assert.equal(hex(relayKeyOfEntry(k.entry).id), v.key_id);
      return;
    }
    case 'fingerprint':
      if (v.expect !== 'success') return expectFailure(v.expect, () => parseFingerprint(v.text));
      assert.equal(hex(parseFingerprint(v.text)), v.key_id);
      assert.equal(formatFingerprint(parseFingerprint(v.text)), v.text);
      return;
    case 'entry': {
      const parse = () => relayKeyOfEntry(b64decode(v.entry));
      if (v.expect !== 'success') return expectFailure(v.expect, parse);
      const key = parse();
      assert.deepEqual([hex(key.id), key.fingerprint], [v.key_id, v.fingerprint]);
      return;
    }
    default:
      assert.fail(`unknown case type ${v.type}`);
  }
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
  if (v.type === 'kid') {
    if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.checkKid(unhex(v.kid), v.relay_key_values));
    return relaySide.checkKid(unhex(v.kid), v.relay_key_values);
  }
  const id = unhex(v.client_id);
  const pid = unhex(v.pair_id);
  if (v.type === 'seal') {
    const state = relaySide.encodeState({ e: BigInt(v.e), ck: unhex(v.ck), kid: unhex(v.kid) });
    assert.equal(hex(state), v.state);
    assert.equal(hex(await relaySide.sealState(v.state_secret, unhex(v.salt), id, pid, state)), v.blob);
    return;
  }
  if (v.expect !== 'success') return expectFailure(v.expect, () => relaySide.openState(v.state_secret, id, pid, unhex(v.blob)));
  const state = await relaySide.openState(v.state_secret, id, pid, unhex(v.blob));
  assert.deepEqual([String(state.e), hex(state.ck), hex(state.kid)], [v.e, v.ck, v.kid]);
});

vectors('url.json', (v) => {
  const url = v.url ?? (v.url_prefix + v.url_fill.repeat(v.url_len)).slice(0, v.url_len);
  assert.equal(utf8(url).length, v.url_len ?? utf8(url).length);
  if (v.expect === 'success') return relaySide.checkOriginForm(url);
  return expectFailure(v.expect, () => relaySide.checkOriginForm(url));
});
