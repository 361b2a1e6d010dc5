/**
 * Pairing (PROTOCOL.md §6): one request creates `n` pairs from one encapsulation to the relay key
 * and one ephemeral X-Wing key; the relay's `confirm` proves it holds the relay key before any pair
 * is used. Pure; randomness comes in as arguments.
 *
 * ```
 * (ct_R, ss_R) = X-Wing.Encaps(pk_fp, eseed_R)            client → relay key
 * (ct_E, ss_E) = X-Wing.Encaps(ek_E, eseed_E)             relay → client's ephemeral key
 * th      = SHA-256("pqrelay/2 pairing" || id || fp || ct_R || ek_E || u8(n) || pid_1..n || ct_E)
 * prk     = HKDF-Extract("pqrelay/2 pair", ss_R || ss_E)
 * root    = HKDF-Expand(prk, "pqrelay/2 root" || th, 32)
 * ck_0(i) = HKDF-Expand(root, "pqrelay/2 chain" || pid_i, 32)
 * kc      = HKDF-Expand(root, "pqrelay/2 confirm", 32)
 * confirm = HMAC(kc, "pqrelay/2 confirm" || u8(k) || fp'_1..k)
 * ```
 * @module
 */
import { expand, extract } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64decode, b64encode, bytesEqual, concat, u8, utf8 } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { parseExactObject } from './_json.js';
import { CT_SIZE, decapsulate, encapsulate, encapsulationKey } from './_kem.js';
import { formatFingerprint, KEY_ID_SIZE, MAX_RELAY_KEYS } from './_relay_key.js';
import { KEY_SIZE } from './_schedule.js';

const PAIRING_LABEL = /* @__PURE__ */ utf8('pqrelay/2 pairing');
const PAIR_SALT = /* @__PURE__ */ utf8('pqrelay/2 pair');
const ROOT_INFO = /* @__PURE__ */ utf8('pqrelay/2 root');
const CHAIN_INFO = /* @__PURE__ */ utf8('pqrelay/2 chain');
const CONFIRM_LABEL = /* @__PURE__ */ utf8('pqrelay/2 confirm');

/** Most pairs in one pairing request (`n` is a u8 in the transcript). */
export const MAX_PAIRS_PER_REQUEST = 255;
/** Pair id length. */
export const PAIR_ID_SIZE = 16;
/** `confirm` length. */
export const CONFIRM_SIZE = 32;

/**
 * The transcript hash `th`.
 * @param {{ id: Uint8Array, keyId: Uint8Array, ctR: Uint8Array, ekE: Uint8Array, pairIds: Uint8Array[], ctE: Uint8Array }} t
 * @returns {Uint8Array}
 */
export function transcriptHash(t) {
  return sha256(concat(PAIRING_LABEL, t.id, t.keyId, t.ctR, t.ekE, u8(t.pairIds.length), ...t.pairIds, t.ctE));
}

/**
 * `root` from both shared secrets and `th` (`prk` is erased).
 * @param {Uint8Array} ssR
 * @param {Uint8Array} ssE
 * @param {Uint8Array} th
 * @returns {Uint8Array}
 */
export function rootKey(ssR, ssE, th) {
  const ikm = concat(ssR, ssE);
  const prk = extract(sha256, ikm, PAIR_SALT);
  const root = expand(sha256, prk, concat(ROOT_INFO, th), KEY_SIZE);
  ikm.fill(0);
  prk.fill(0);
  return root;
}

/**
 * `ck_0` of one pair.
 * @param {Uint8Array} root
 * @param {Uint8Array} pid
 * @returns {Uint8Array}
 */
export const chainKey0 = (root, pid) => expand(sha256, root, concat(CHAIN_INFO, pid), KEY_SIZE);

/**
 * `confirm` over the relay's key ids (`kc` is erased).
 * @param {Uint8Array} root
 * @param {Uint8Array[]} keyIds all the relay's key ids, current first
 * @returns {Uint8Array}
 */
export function confirmTag(root, keyIds) {
  const kc = expand(sha256, root, CONFIRM_LABEL, KEY_SIZE);
  const tag = hmac(sha256, kc, concat(CONFIRM_LABEL, u8(keyIds.length), ...keyIds));
  kc.fill(0);
  return tag;
}

/**
 * The request body, keys in the order `key`, `ct`, `ek`, `pairs`.
 * @param {{ keyId: Uint8Array, ctR: Uint8Array, ekE: Uint8Array, pairIds: Uint8Array[] }} r
 * @returns {string}
 */
export function encodePairingRequest(r) {
  return JSON.stringify({ key: b64encode(r.keyId), ct: b64encode(r.ctR), ek: b64encode(r.ekE), pairs: r.pairIds.map(b64encode) });
}

/**
 * Decodes a strict b64 string field of `length` bytes, or null.
 * @param {unknown} value
 * @param {number} length
 * @returns {Uint8Array | null}
 */
export function b64Field(value, length) {
  if (typeof value !== 'string') return null;
  try {
    const bytes = b64decode(value);
    return bytes.length === length ? bytes : null;
  } catch {
    return null;
  }
}

/**
 * The relay's answer, checked for shape: exactly `ct` (1120 bytes), `keys` (1–8 distinct ids) and
 * `confirm` (32 bytes).
 * @param {string} text
 * @returns {{ ctE: Uint8Array, keys: Uint8Array[], confirm: Uint8Array } | null} null when malformed
 */
export function parsePairingResponse(text) {
  const body = parseExactObject(text, ['ct', 'keys', 'confirm']);
  if (!body || !Array.isArray(body.keys) || body.keys.length < 1 || body.keys.length > MAX_RELAY_KEYS) return null;
  const ctE = b64Field(body.ct, CT_SIZE);
  const confirm = b64Field(body.confirm, CONFIRM_SIZE);
  const keys = body.keys.map((k) => b64Field(k, KEY_ID_SIZE));
  if (!ctE || !confirm || keys.some((k, i) => k === null || keys.slice(0, i).some((o) => bytesEqual(o, k)))) return null;
  return { ctE, keys: /** @type {Uint8Array[]} */ (keys), confirm };
}

/**
 * A new pair at counter 0.
 * @typedef {object} NewPair
 * @property {Uint8Array} pid
 * @property {Uint8Array} chainKey ck_0
 */

/**
 * The client's side of one `POST /api/mte-pair`: build with {@link startPairing}, send `body`,
 * give the answer to `complete`. Holds `seed_E` and `ss_R` until then (`discard` erases them).
 * @typedef {object} ClientPairing
 * @property {string} body the request body
 * @property {import('./_relay_key.js').RelayKey} relayKey the key paired with
 * @property {(responseText: string) => { pairs: NewPair[], keys: Uint8Array[] }} complete verifies the
 *   answer; throws `pairing_not_confirmed` (hard error, naming the key's fingerprint) on any failure
 * @property {() => void} discard erases the secrets without completing
 */

/**
 * Starts a pairing with `relayKey`.
 * @param {{ id: Uint8Array, relayKey: import('./_relay_key.js').RelayKey, eseedR: Uint8Array, seedE: Uint8Array, pairIds: Uint8Array[] }} p
 *   `eseedR` (64 bytes), `seedE` (32 bytes) and the distinct `pairIds` are fresh random bytes
 * @returns {ClientPairing}
 */
export function startPairing({ id, relayKey, eseedR, seedE, pairIds }) {
  if (pairIds.length < 1 || pairIds.length > MAX_PAIRS_PER_REQUEST) throw new RangeError(`a pairing request carries 1 to ${MAX_PAIRS_PER_REQUEST} pairs`);
  const { ct: ctR, ss: ssR } = encapsulate(relayKey.pk, eseedR);
  const ekE = encapsulationKey(seedE);
  const body = encodePairingRequest({ keyId: relayKey.id, ctR, ekE, pairIds });
  const discard = () => {
    seedE.fill(0);
    ssR.fill(0);
  };
  const fail = (reason, message, cause) =>
    new MteRelayError('pairing_not_confirmed', `the pairing answer was not confirmed for relay key ${relayKey.fingerprint}: ${message}`, {
      reason,
      fingerprint: relayKey.fingerprint,
      cause,
    });
  return {
    body,
    relayKey,
    discard,
    complete(responseText) {
      try {
        const answer = parsePairingResponse(responseText);
        if (!answer) throw fail('malformed', 'the answer is not the JSON of §6');
        let ssE;
        try {
          ssE = decapsulate(seedE, answer.ctE);
        } catch (cause) {
          throw fail('non_contributory', 'its ciphertext was refused by X-Wing', cause);
        }
        const root = rootKey(ssR, ssE, transcriptHash({ id, keyId: relayKey.id, ctR, ekE, pairIds, ctE: answer.ctE }));
        ssE.fill(0);
        try {
          if (!bytesEqual(confirmTag(root, answer.keys), answer.confirm)) {
            throw fail('mismatch', 'confirm does not verify: an attacker answered, or the relay does not hold this key');
          }
          if (!answer.keys.some((k) => bytesEqual(k, relayKey.id))) {
            throw fail('key_not_listed', `the relay's keys (${answer.keys.map(formatFingerprint).join(', ')}) do not include it`);
          }
          return { pairs: pairIds.map((pid) => ({ pid, chainKey: chainKey0(root, pid) })), keys: answer.keys };
        } finally {
          root.fill(0);
        }
      } finally {
        discard();
      }
    },
  };
}
