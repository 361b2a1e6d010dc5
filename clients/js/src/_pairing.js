/**
 * Pairing messages (PROTOCOL.md §5): the request body the client sends, the relay's answer, and
 * the chain keys both sides derive. Pure; randomness comes in as arguments.
 * @module
 */
import { b64decode, b64encode, bytesEqual } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { ID_SIZE } from './_headers.js';
import { CT_SIZE, decapsulate, encapsulationKey } from './_kem.js';
import { initialChainKey } from './_schedule.js';

/**
 * A pair being set up: its id and X-Wing seed (decapsulation key).
 * @typedef {object} PairSecret
 * @property {Uint8Array} pid 16 bytes
 * @property {Uint8Array} seed 32 bytes
 */

/**
 * The JSON body of `POST /api/mte-pair`.
 * @param {PairSecret[]} pairs
 * @returns {string}
 */
export function encodePairingRequest(pairs) {
  return JSON.stringify({
    pairs: pairs.map((p) => ({ id: b64encode(p.pid), ek: b64encode(encapsulationKey(p.seed)) })),
  });
}

const bad = (message) => new MteRelayError('pairing_failed', `pairing response: ${message}`);

/**
 * Parses the relay's pairing answer and returns the ciphertexts in request order.
 * @param {string} json response body
 * @param {PairSecret[]} pairs the pairs that were sent, in order
 * @returns {Uint8Array[]} one ct per pair
 */
export function decodePairingResponse(json, pairs) {
  let parsed;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw bad('not JSON');
  }
  const list = parsed?.pairs;
  if (!Array.isArray(list) || list.length !== pairs.length) throw bad('wrong number of pairs');
  return list.map((entry, i) => {
    let pid;
    let ct;
    try {
      pid = b64decode(entry?.id);
      ct = b64decode(entry?.ct);
    } catch {
      throw bad('bad base64url');
    }
    if (pid.length !== ID_SIZE || !bytesEqual(pid, pairs[i].pid)) throw bad('pair ids differ from the request');
    if (ct.length !== CT_SIZE) throw bad('ciphertext has the wrong length');
    return ct;
  });
}

/**
 * Client side of pairing for one pair: decapsulates and derives `ck_0`.
 * @param {PairSecret} pair
 * @param {Uint8Array} ct
 * @param {Uint8Array} id client id (16 bytes)
 * @returns {Uint8Array} ck_0
 */
export function completePair(pair, ct, id) {
  let ss;
  try {
    ss = decapsulate(pair.seed, ct);
  } catch (cause) {
    throw new MteRelayError('pairing_failed', 'pairing response: ciphertext rejected by X-Wing decapsulation', { cause });
  }
  const ck0 = initialChainKey(ss, id, pair.pid);
  ss.fill(0);
  return ck0;
}
