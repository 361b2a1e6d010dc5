/**
 * The ratchet (PROTOCOL.md §7). Pure and synchronous. `ck_n` is uniformly random and is used
 * directly as the HKDF PRK.
 *
 * ```
 * kq_n     = HKDF-Expand(ck_n, "pqrelay/2 request",  32)
 * ks_n     = HKDF-Expand(ck_n, "pqrelay/2 response", 32)
 * ke_n     = HKDF-Expand(ck_n, "pqrelay/2 error",    32)
 * ck_{n+1} = HKDF-Expand(ck_n, "pqrelay/2 next",     32)
 * ```
 * @module
 */
import { expand } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8 } from './_bytes.js';

const REQUEST_INFO = /* @__PURE__ */ utf8('pqrelay/2 request');
const RESPONSE_INFO = /* @__PURE__ */ utf8('pqrelay/2 response');
const ERROR_INFO = /* @__PURE__ */ utf8('pqrelay/2 error');
const NEXT_INFO = /* @__PURE__ */ utf8('pqrelay/2 next');

/** Length of every key in the schedule. */
export const KEY_SIZE = 32;
/** The last counter a pair may use; beyond it the pair must be re-paired. */
export const MAX_COUNTER = (1n << 64n) - 2n;

/**
 * One ratchet step from `ck_n`: the exchange keys and the next chain key.
 * @param {Uint8Array} ck chain key `ck_n`
 * @returns {{ requestKey: Uint8Array, responseKey: Uint8Array, errorKey: Uint8Array, nextChainKey: Uint8Array }}
 */
export function ratchet(ck) {
  return {
    requestKey: expand(sha256, ck, REQUEST_INFO, KEY_SIZE),
    responseKey: expand(sha256, ck, RESPONSE_INFO, KEY_SIZE),
    errorKey: expand(sha256, ck, ERROR_INFO, KEY_SIZE),
    nextChainKey: expand(sha256, ck, NEXT_INFO, KEY_SIZE),
  };
}
