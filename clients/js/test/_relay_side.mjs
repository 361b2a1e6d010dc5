// The relay's half of the protocol, written from PROTOCOL.md for the vector tests only: checks a
// client never performs (client id tokens, relay key values, the pairing request and its answer,
// counter acceptance and the retry rule, state at rest, the origin-form URL rule). Each throws an
// Error whose `kind` is the vector's `expect`.
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64decode, b64encode, bytesEqual, concat, u16, u64, u8, utf8 } from '../src/_bytes.js';
import { parseExactObject } from '../src/_json.js';
import { CT_SIZE, decapsulate, EK_SIZE, encapsulate, encapsulationKey, isValidEncapsulationKey, KEM_ID } from '../src/_kem.js';
import { MAX_COUNTER, ratchet } from '../src/_schedule.js';
import { importKey, open, seal } from '../src/_seal.js';

export const fail = (kind, message = kind) => Object.assign(new Error(message), { kind });

// §3 client ids
export function issueToken(secret, id) {
  const mac = hmac(sha256, utf8(secret), concat(utf8('pqrelay/2 client-id'), id));
  return { mac, token: b64encode(concat(id, mac)) };
}

/** Verifies against [current, ...previous]; returns the token re-signed with the current secret. */
export function verifyToken(secrets, token) {
  let raw;
  try {
    raw = b64decode(token);
  } catch {
    throw fail('invalid_client_id');
  }
  if (token.length !== 64 || raw.length !== 48) throw fail('invalid_client_id');
  const id = raw.subarray(0, 16);
  for (const secret of secrets) {
    if (bytesEqual(issueToken(secret, id).mac, raw.subarray(16))) return { id, tokenOut: issueToken(secrets[0], id).token };
  }
  throw fail('invalid_client_id');
}

// §4 relay keys
const VALUE_SALT = 'pqrelay/2 relay key';
const SECRET_SALT = 'pqrelay/2 relay key from client-id secret';

/** A relay key pair from a `RELAY_KEYS` value (or, with `fromSecret`, from a client-id secret). */
export function relayKeyFrom(value, { fromSecret = false } = {}) {
  if (!fromSecret && !/^[A-Za-z0-9_-]{43,}$/.test(value)) throw fail('invalid_relay_key');
  const prk = extract(sha256, utf8(value), utf8(fromSecret ? SECRET_SALT : VALUE_SALT));
  const seed = expand(sha256, prk, utf8('pqrelay/2 relay key seed'), 32);
  const publicKey = encapsulationKey(seed);
  const entry = concat(u16(KEM_ID), publicKey);
  const keyId = sha256(entry);
  return { seed, publicKey, entry, keyId, kid: keyId.slice(0, 8) };
}

// §6 pairing request body and answer, derived here from the primitives (not from the client's
// src/_pairing.js) so that the vectors check both independently.
export function parsePairingRequest(body, maxPairs) {
  if (utf8(body).length > 65536) throw fail('too_large');
  const parsed = parseExactObject(body, ['key', 'ct', 'ek', 'pairs']);
  if (!parsed) throw fail('invalid_pairing', 'not the JSON object of §6 (or a key twice)');
  const bytes = (text, chars, size) => {
    if (typeof text !== 'string' || (chars !== null && text.length !== chars)) throw fail('invalid_pairing', 'field');
    let out;
    try {
      out = b64decode(text);
    } catch {
      throw fail('invalid_pairing', 'base64url');
    }
    if (out.length !== size) throw fail('invalid_pairing', 'size');
    return out;
  };
  const keyId = bytes(parsed.key, 43, 32);
  const ctR = bytes(parsed.ct, null, CT_SIZE);
  const ekE = bytes(parsed.ek, null, EK_SIZE);
  if (!isValidEncapsulationKey(ekE)) throw fail('invalid_pairing', 'ek');
  if (!Array.isArray(parsed.pairs) || parsed.pairs.length < 1 || parsed.pairs.length > maxPairs) throw fail('invalid_pairing', 'pair count');
  const pids = parsed.pairs.map((p) => bytes(p, 22, 16));
  if (new Set(parsed.pairs).size !== pids.length) throw fail('invalid_pairing', 'duplicate pair id');
  return { keyId, ctR, ekE, pids };
}

const label = (text) => utf8(`pqrelay/2 ${text}`);

/** Steps 4–5 and the answer: `relayKeys` from relayKeyFrom, current first. */
export function answerPairing(relayKeys, id, request, eseedE) {
  const key = relayKeys.find((k) => bytesEqual(k.keyId, request.keyId));
  if (!key) throw fail('unknown_relay_key');
  let ssR;
  try {
    ssR = decapsulate(key.seed, request.ctR);
  } catch {
    throw fail('invalid_pairing', 'all-zero X25519 share');
  }
  const { ct: ctE, ss: ssE } = encapsulate(request.ekE, eseedE);
  const th = sha256(concat(label('pairing'), id, request.keyId, request.ctR, request.ekE, u8(request.pids.length), ...request.pids, ctE));
  const prk = extract(sha256, concat(ssR, ssE), label('pair'));
  const root = expand(sha256, prk, concat(label('root'), th), 32);
  const kc = expand(sha256, root, label('confirm'), 32);
  const keyIds = relayKeys.map((k) => k.keyId);
  const confirm = hmac(sha256, kc, concat(label('confirm'), u8(keyIds.length), ...keyIds));
  const chainKeys = request.pids.map((pid) => expand(sha256, root, concat(label('chain'), pid), 32));
  const body = JSON.stringify({ ct: b64encode(ctE), keys: keyIds.map(b64encode), confirm: b64encode(confirm) });
  return { ssR, ssE, ctE, th, prk, root, kc, confirm, chainKeys, kid: key.kid, body };
}

// §7 counter acceptance and the retry rule
export function retryRule(m, e) {
  if (m < 1n || m - 1n < e) throw fail('retry_refused');
}

/** The relay's accept step: keys of counter m and the state it commits; then the retry rule. */
export function acceptCounter(state, m, maxSkip, retry) {
  if (m < state.e || m > state.e + BigInt(maxSkip) || m > MAX_COUNTER) throw fail('counter_rejected');
  let ck = state.ck;
  for (let n = state.e; n < m; n++) ck = ratchet(ck).nextChainKey;
  const { requestKey, responseKey, errorKey, nextChainKey } = ratchet(ck);
  const result = { keys: { kq: requestKey, ks: responseKey, ke: errorKey }, after: { e: m + 1n, ck: nextChainKey, kid: state.kid } };
  if (retry) {
    try {
      retryRule(m, state.e);
    } catch (error) {
      throw Object.assign(error, { result }); // committed, then refused
    }
  }
  return result;
}

// §14 state
export const encodeState = (s) => concat(u8(2), u64(s.e), s.ck, s.kid);

async function blobKey(stateSecret, salt) {
  const stateKey = expand(sha256, extract(sha256, utf8(stateSecret), utf8('pqrelay/2 state')), utf8('pqrelay/2 state key'), 32);
  return importKey(expand(sha256, stateKey, concat(utf8('pqrelay/2 state blob'), salt), 32));
}

const blobAad = (id, pid) => concat(utf8('pqrelay/2 state'), id, pid);

export async function sealState(stateSecret, salt, id, pid, state) {
  return concat(salt, await seal(await blobKey(stateSecret, salt), new Uint8Array(12), state, blobAad(id, pid)));
}

export async function openState(stateSecret, id, pid, blob) {
  if (blob.length !== 81) throw fail('state_failure');
  let state;
  try {
    state = await open(await blobKey(stateSecret, blob.subarray(0, 16)), new Uint8Array(12), blob.subarray(16), blobAad(id, pid));
  } catch {
    throw fail('state_failure');
  }
  if (state.length !== 49 || state[0] !== 2) throw fail('invalid_state');
  return { e: new DataView(state.buffer, state.byteOffset + 1, 8).getBigUint64(0), ck: state.slice(9, 41), kid: state.slice(41) };
}

export function checkKid(kid, relayKeyValues) {
  if (!relayKeyValues.some((v) => bytesEqual(relayKeyFrom(v).kid, kid))) throw fail('state_failure');
}

// §9.2 URL rules (decoded URL or plain target)
export function checkOriginForm(url) {
  const bytes = utf8(url);
  if (bytes.length > 8192) throw fail('uri_too_long');
  const ok = bytes.length >= 1 && url[0] === '/' && url[1] !== '/' && /^[\x21-\x7e]*$/.test(url) && !/[\\#]/.test(url);
  if (!ok) throw fail('invalid_url');
  const path = url.split('?')[0];
  if (/%(2f|5c|00)/i.test(path)) throw fail('invalid_url');
  for (const segment of path.split('/')) {
    let decoded;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      decoded = segment;
    }
    const name = decoded.split(';')[0];
    if (name === '.' || name === '..') throw fail('invalid_url');
  }
}
