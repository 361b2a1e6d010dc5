/**
 * Sealing (PROTOCOL.md §8): nonces, the fixed-layout AAD, and AES-256-GCM through WebCrypto.
 * @module
 */
import { concat, u16, u64, u8, utf8 } from './_bytes.js';
import { MteRelayError } from './_errors.js';

/** Direction values bound into the AAD. */
export const DIR_REQUEST = 1;
export const DIR_RESPONSE = 2;
/** Part values bound into the AAD and the nonce. */
export const PART_URL = 1;
export const PART_HEADERS = 2;
export const PART_BODY = 3;
/** AES-GCM tag length in bytes. */
export const TAG_SIZE = 16;

const AAD_LABEL = /* @__PURE__ */ utf8('pqrelay/2');
/** An HTTP method token (RFC 9110 §5.6.2). */
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,255}$/;

/**
 * `part(u8) || final(u8) || 0x00 0x00 || index(u64)`.
 * @param {number} part
 * @param {boolean} final
 * @param {bigint | number} index
 * @returns {Uint8Array}
 */
export function nonce(part, final, index) {
  return concat(u8(part), u8(final ? 1 : 0), u16(0), u64(index));
}

/**
 * @typedef {object} AadFields
 * @property {number} dir DIR_REQUEST or DIR_RESPONSE
 * @property {number} part PART_URL, PART_HEADERS or PART_BODY
 * @property {number} flags flags of this message's `x-mte-relay` header
 * @property {Uint8Array} id client id, 16 bytes
 * @property {Uint8Array} pid pair id, 16 bytes
 * @property {bigint} counter exchange counter
 * @property {bigint | number} index body chunk index (0 for url and headers)
 * @property {boolean} final last body chunk; true for url and headers
 * @property {number} status response status; 0 for requests
 * @property {string} method request method as sent
 * @property {string} target request-target for the request headers part when the URL is not sealed, else ''
 */

/**
 * Checks that a method can be bound into the AAD: a token of 1..=255 bytes (§8).
 * @param {string} method
 * @throws {MteRelayError} `invalid_method`
 */
export function checkMethod(method) {
  if (!METHOD_TOKEN.test(method)) throw new MteRelayError('invalid_method', 'the request method is not a token of 1 to 255 characters');
}

/**
 * Builds the AAD of one sealed item.
 * @param {AadFields} f
 * @returns {Uint8Array}
 * @throws {MteRelayError} `invalid_method` when the method is not a token of 1..=255 bytes
 */
export function aad(f) {
  checkMethod(f.method);
  const method = utf8(f.method);
  const target = utf8(f.target);
  if (target.length > 0xffff) throw new RangeError('target too long');
  return concat(
    AAD_LABEL,
    u8(f.dir),
    u8(f.part),
    u8(f.flags),
    f.id,
    f.pid,
    u64(f.counter),
    u64(f.index),
    u8(f.final ? 1 : 0),
    u16(f.status),
    u8(method.length),
    method,
    u16(target.length),
    target,
  );
}

/**
 * Imports a raw 32-byte key for AES-256-GCM.
 * @param {Uint8Array} raw
 * @returns {Promise<CryptoKey>}
 */
export function importKey(raw) {
  return globalThis.crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
}

/**
 * AES-256-GCM seal: `ciphertext || tag`.
 * @param {CryptoKey} key
 * @param {Uint8Array} iv 12-byte nonce
 * @param {Uint8Array} plaintext
 * @param {Uint8Array} additionalData
 * @returns {Promise<Uint8Array>}
 */
export async function seal(key, iv, plaintext, additionalData) {
  const out = await globalThis.crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData }, key, plaintext);
  return new Uint8Array(out);
}

/**
 * AES-256-GCM open.
 * @param {CryptoKey} key
 * @param {Uint8Array} iv 12-byte nonce
 * @param {Uint8Array} sealed `ciphertext || tag`
 * @param {Uint8Array} additionalData
 * @returns {Promise<Uint8Array>} plaintext
 * @throws {MteRelayError} `decode_failed` when the item does not open
 */
export async function open(key, iv, sealed, additionalData) {
  try {
    const out = await globalThis.crypto.subtle.decrypt({ name: 'AES-GCM', iv, additionalData }, key, sealed);
    return new Uint8Array(out);
  } catch (cause) {
    throw new MteRelayError('decode_failed', 'a sealed item from the relay did not open (tampered or wrong keys)', { cause });
  }
}
