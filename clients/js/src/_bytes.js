/**
 * Byte helpers: strict base64url (RFC 4648 §5, no padding, canonical only), big-endian integers,
 * UTF-8. Every decoder here throws on malformed input; none of them ever indexes past its input.
 * @module
 */

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64_LOOKUP = /* @__PURE__ */ (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < B64_ALPHABET.length; i++) table[B64_ALPHABET.charCodeAt(i)] = i;
  return table;
})();

/** Largest u64, as a BigInt. */
export const U64_MAX = (1n << 64n) - 1n;

const utf8Encoder = /* @__PURE__ */ new TextEncoder();
const utf8Decoder = /* @__PURE__ */ new TextDecoder('utf-8', { fatal: true });

/**
 * Encodes bytes as base64url without padding.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function b64encode(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64_ALPHABET[v >> 18] + B64_ALPHABET[(v >> 12) & 63] + B64_ALPHABET[(v >> 6) & 63] + B64_ALPHABET[v & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const v = bytes[i] << 16;
    out += B64_ALPHABET[v >> 18] + B64_ALPHABET[(v >> 12) & 63];
  } else if (rest === 2) {
    const v = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += B64_ALPHABET[v >> 18] + B64_ALPHABET[(v >> 12) & 63] + B64_ALPHABET[(v >> 6) & 63];
  }
  return out;
}

/**
 * Decodes base64url without padding. Rejects padding, characters outside the alphabet, impossible
 * lengths and non-canonical encodings (non-zero unused trailing bits).
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {SyntaxError} on any malformed input
 */
export function b64decode(text) {
  if (typeof text !== 'string') throw new SyntaxError('base64url: not a string');
  if (text.length % 4 === 1) throw new SyntaxError('base64url: impossible length');
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? B64_LOOKUP[c] : -1;
    if (v < 0) throw new SyntaxError('base64url: invalid character');
    acc = ((acc << 6) | v) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  if ((acc & ((1 << bits) - 1)) !== 0) throw new SyntaxError('base64url: non-canonical encoding');
  return out;
}

/**
 * Concatenates byte arrays.
 * @param {...Uint8Array} parts
 * @returns {Uint8Array}
 */
export function concat(...parts) {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** @param {number} v @returns {Uint8Array} */
export const u8 = (v) => Uint8Array.of(v & 0xff);

/** @param {number} v @returns {Uint8Array} */
export const u16 = (v) => Uint8Array.of((v >>> 8) & 0xff, v & 0xff);

/** @param {number} v @returns {Uint8Array} */
export const u32 = (v) => Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);

/**
 * @param {bigint | number} v an integer in 0..2^64-1
 * @returns {Uint8Array}
 */
export function u64(v) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(v));
  return out;
}

/** @param {string} s @returns {Uint8Array} */
export const utf8 = (s) => utf8Encoder.encode(s);

/**
 * Decodes UTF-8, rejecting invalid sequences.
 * @param {Uint8Array} bytes
 * @returns {string}
 * @throws {TypeError} on invalid UTF-8
 */
export const fromUtf8 = (bytes) => utf8Decoder.decode(bytes);

/**
 * Constant-length equality of two byte arrays (lengths compared first).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
