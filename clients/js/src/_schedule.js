/**
 * Key schedule and ratchet (PROTOCOL.md §6). Pure and synchronous.
 * @module
 */
import { expand, extract } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concat, utf8 } from './_bytes.js';

const PAIR_SALT = /* @__PURE__ */ utf8('pqrelay/1 pair');
const CHAIN_INFO = /* @__PURE__ */ utf8('pqrelay/1 chain');
const REQUEST_INFO = /* @__PURE__ */ utf8('pqrelay/1 request');
const RESPONSE_INFO = /* @__PURE__ */ utf8('pqrelay/1 response');
const NEXT_INFO = /* @__PURE__ */ utf8('pqrelay/1 next');

/** Length of every key in the schedule. */
export const KEY_SIZE = 32;
/** The last counter a pair may use; beyond it the pair must be re-paired. */
export const MAX_COUNTER = (1n << 64n) - 2n;

/**
 * `ck_0 = HKDF-Expand(HKDF-Extract("pqrelay/1 pair", ss), "pqrelay/1 chain" || id || pid, 32)`.
 * @param {Uint8Array} ss X-Wing shared secret (32 bytes)
 * @param {Uint8Array} id client id (16 bytes)
 * @param {Uint8Array} pid pair id (16 bytes)
 * @returns {Uint8Array} ck_0
 */
export function initialChainKey(ss, id, pid) {
  const prk = extract(sha256, ss, PAIR_SALT);
  const ck0 = expand(sha256, prk, concat(CHAIN_INFO, id, pid), KEY_SIZE);
  prk.fill(0);
  return ck0;
}

/**
 * One ratchet step from `ck_n`: the exchange keys and the next chain key.
 * @param {Uint8Array} ck chain key `ck_n`
 * @returns {{ requestKey: Uint8Array, responseKey: Uint8Array, nextChainKey: Uint8Array }}
 */
export function ratchet(ck) {
  return {
    requestKey: expand(sha256, ck, REQUEST_INFO, KEY_SIZE),
    responseKey: expand(sha256, ck, RESPONSE_INFO, KEY_SIZE),
    nextChainKey: expand(sha256, ck, NEXT_INFO, KEY_SIZE),
  };
}
