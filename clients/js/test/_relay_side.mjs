// The relay's half of the protocol, written from PROTOCOL.md for the vector tests only: checks a
// client never performs (client id tokens, pairing request validation, counter acceptance, state
// at rest, the origin-form URL rule). Each throws an Error whose `kind` is the vector's `expect`.
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64decode, b64encode, bytesEqual, concat, u64, utf8 } from '../src/_bytes.js';
import { EK_SIZE, encapsulate, ESEED_SIZE } from '../src/_kem.js';
import { MAX_COUNTER, ratchet } from '../src/_schedule.js';
import { importKey, open, seal } from '../src/_seal.js';

export const fail = (kind, message = kind) => Object.assign(new Error(message), { kind });

// §3 client ids
export function issueToken(secret, id) {
  const mac = hmac(sha256, utf8(secret), concat(utf8('pqrelay/1 client-id'), id));
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
  if (raw.length !== 48) throw fail('invalid_client_id');
  const id = raw.subarray(0, 16);
  for (const secret of secrets) {
    if (bytesEqual(issueToken(secret, id).mac, raw.subarray(16))) return { id, tokenOut: issueToken(secrets[0], id).token };
  }
  throw fail('invalid_client_id');
}

// §5 pairing request body
/** Rejects duplicate keys in any JSON object (JSON.parse silently keeps the last one). */
function assertNoDuplicateKeys(text) {
  const stack = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const keys = stack.at(-1);
      if (keys && /^\s*:/.test(text.slice(j + 1))) {
        const key = JSON.parse(text.slice(i, j + 1));
        if (keys.has(key)) throw fail('invalid_pairing', `duplicate key ${key}`);
        keys.add(key);
      }
      i = j;
    }
  }
}

const exactKeys = (obj, keys) => obj !== null && typeof obj === 'object' && !Array.isArray(obj) && Object.keys(obj).sort().join() === [...keys].sort().join();

export function parsePairingRequest(body, maxPairs) {
  if (utf8(body).length > 65536) throw fail('invalid_pairing', 'too large');
  let parsed;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw fail('invalid_pairing', 'not JSON');
  }
  assertNoDuplicateKeys(body);
  if (!exactKeys(parsed, ['pairs']) || !Array.isArray(parsed.pairs)) throw fail('invalid_pairing', 'shape');
  if (parsed.pairs.length < 1 || parsed.pairs.length > maxPairs) throw fail('invalid_pairing', 'count');
  const seen = new Set();
  return parsed.pairs.map((p) => {
    if (!exactKeys(p, ['id', 'ek']) || typeof p.id !== 'string' || typeof p.ek !== 'string') throw fail('invalid_pairing', 'pair shape');
    let pid;
    let ek;
    try {
      pid = b64decode(p.id);
      ek = b64decode(p.ek);
    } catch {
      throw fail('invalid_pairing', 'base64url');
    }
    if (p.id.length !== 22 || pid.length !== 16 || ek.length !== EK_SIZE) throw fail('invalid_pairing', 'lengths');
    if (seen.has(p.id)) throw fail('invalid_pairing', 'duplicate id');
    seen.add(p.id);
    relayEncapsulate(ek, new Uint8Array(ESEED_SIZE)); // the relay's encapsulation rejects bad keys
    return { pid, ek };
  });
}

export function relayEncapsulate(ek, eseed) {
  try {
    return encapsulate(ek, eseed);
  } catch (cause) {
    throw Object.assign(fail('invalid_pairing', 'encapsulation key rejected'), { cause });
  }
}

// §6 counter acceptance
export function acceptCounter(state, m, maxSkip) {
  if (m < state.next || m > state.next + BigInt(maxSkip) || m > MAX_COUNTER) throw fail('counter_rejected');
  let ck = state.ck;
  for (let n = state.next; n < m; n++) ck = ratchet(ck).nextChainKey;
  const { requestKey, responseKey, nextChainKey } = ratchet(ck);
  return { kq: requestKey, ks: responseKey, after: { next: m + 1n, ck: nextChainKey } };
}

export const encodeState = (s) => concat(Uint8Array.of(1), u64(s.next), s.ck);

// §10 state at rest
async function blobKey(stateSecret, salt) {
  const stateKey = expand(sha256, extract(sha256, utf8(stateSecret), utf8('pqrelay/1 state')), utf8('pqrelay/1 state key'), 32);
  return importKey(expand(sha256, stateKey, concat(utf8('pqrelay/1 state blob'), salt), 32));
}

const blobAad = (id, pid) => concat(utf8('pqrelay/1 state'), id, pid);

export async function sealState(stateSecret, salt, id, pid, state) {
  return concat(salt, await seal(await blobKey(stateSecret, salt), new Uint8Array(12), state, blobAad(id, pid)));
}

export async function openState(stateSecret, id, pid, blob) {
  if (blob.length !== 73) throw fail('state_failure');
  let state;
  try {
    state = await open(await blobKey(stateSecret, blob.subarray(0, 16)), new Uint8Array(12), blob.subarray(16), blobAad(id, pid));
  } catch {
    throw fail('state_failure');
  }
  if (state[0] !== 1) throw fail('invalid_state');
  return { next: new DataView(state.buffer, state.byteOffset + 1, 8).getBigUint64(0), ck: state.slice(9) };
}

// §8.2 decoded URL
export function checkOriginForm(url) {
  const ok = url.length >= 1 && url.length <= 8192 && url[0] === '/' && url[1] !== '/' && /^[\x21-\x7e]*$/.test(url) && !/[\\#]/.test(url);
  if (!ok) throw fail('invalid_url');
}
