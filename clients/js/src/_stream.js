/**
 * STREAM body framing (PROTOCOL.md §9): records of `header(u32) || AES-256-GCM(chunk)`.
 * Knows nothing about HTTP; the caller supplies the key and an AAD builder per record.
 *
 * The decoder buffers at most one record and stops for good after the first failure; its
 * `finish()` MUST be called at end of input to detect truncation.
 * @module
 */
import { concat, u32 } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { nonce, open, PART_BODY, seal, TAG_SIZE } from './_seal.js';

/** Plain bytes per full record. */
export const CHUNK_SIZE = 65536;
/** Record header length. */
export const RECORD_HEADER_SIZE = 4;
/** Bytes a record adds to its chunk. */
export const RECORD_OVERHEAD = RECORD_HEADER_SIZE + TAG_SIZE;
const FINAL_BIT = 0x80000000;

const framing = (message) => new MteRelayError('framing_failed', `sealed body: ${message}`);

/**
 * Number of records of a sized body of `plainLength` bytes: `max(1, ceil(L / CHUNK_SIZE))`.
 * @param {number} plainLength
 * @returns {number}
 */
const recordCount = (plainLength) => Math.max(1, Math.ceil(plainLength / CHUNK_SIZE));

/**
 * `encoded_len(L) = L + 20 * records(L)`.
 * @param {number} plainLength
 * @returns {number}
 */
export const encodedLength = (plainLength) => plainLength + RECORD_OVERHEAD * recordCount(plainLength);

/**
 * Inverse of {@link encodedLength}: the plain length of a sized body of `encoded` bytes, or `null`
 * when no plain length encodes to exactly that many bytes.
 * @param {number} encoded
 * @returns {number | null}
 */
export function plainLength(encoded) {
  const records = Math.max(1, Math.ceil(encoded / (CHUNK_SIZE + RECORD_OVERHEAD)));
  const plain = encoded - RECORD_OVERHEAD * records;
  return plain >= 0 && encodedLength(plain) === encoded ? plain : null;
}

/**
 * `(final << 31) | len`.
 * @param {boolean} final
 * @param {number} length 0..CHUNK_SIZE
 * @returns {Uint8Array}
 */
const encodeRecordHeader = (final, length) => u32((final ? FINAL_BIT : 0) + length);

/**
 * Parses a record header value, checking the reserved bits and the length bound (0 is accepted here;
 * whether an empty record is allowed depends on `final`, which the caller checks).
 * @param {number} value the u32
 * @returns {{ final: boolean, length: number }}
 */
function parseRecordHeader(value) {
  const final = (value & FINAL_BIT) !== 0;
  const rest = (value & ~FINAL_BIT) >>> 0;
  // Any of the reserved bits 17..30 makes the length exceed CHUNK_SIZE (2^16), so one check covers both.
  if (rest > CHUNK_SIZE) throw framing('record length over CHUNK_SIZE or reserved header bits set');
  if (!final && rest === 0) throw framing('empty non-final record');
  return { final, length: rest };
}

/**
 * Builds the AAD of body record `index`.
 * @callback RecordAad
 * @param {number} index
 * @param {boolean} final
 * @returns {Uint8Array}
 */

/** Seals body chunks into records, counting indexes; call {@link StreamSealer#seal} per chunk. */
export class StreamSealer {
  /**
   * @param {CryptoKey} key
   * @param {RecordAad} aadFor
   */
  constructor(key, aadFor) {
    this._key = key;
    this._aadFor = aadFor;
    this._index = 0;
    this._done = false;
  }

  /**
   * Seals the next chunk. Non-final chunks must be 1..CHUNK_SIZE bytes, the final 0..CHUNK_SIZE.
   * @param {Uint8Array} chunk
   * @param {boolean} final
   * @returns {Promise<Uint8Array>} the record
   */
  async seal(chunk, final) {
    if (this._done) throw new Error('StreamSealer: already finished');
    if (chunk.length > CHUNK_SIZE || (!final && chunk.length === 0)) throw new RangeError('StreamSealer: bad chunk length');
    const index = this._index++;
    this._done = final;
    const sealed = await seal(this._key, nonce(PART_BODY, final, index), chunk, this._aadFor(index, final));
    return concat(encodeRecordHeader(final, chunk.length), sealed);
  }
}

/**
 * Incremental decoder. Feed transport bytes with {@link StreamOpener#push} (any split), then call
 * {@link StreamOpener#finish}. In sized mode (`expectedLength` given) every record but the last must
 * be full and the decoded total must equal `expectedLength`.
 */
export class StreamOpener {
  /**
   * @param {CryptoKey} key
   * @param {RecordAad} aadFor
   * @param {{ expectedLength?: number | null, sized?: boolean }} [options]
   */
  constructor(key, aadFor, options = {}) {
    this._key = key;
    this._aadFor = aadFor;
    this._sized = options.sized === true || options.expectedLength != null;
    this._expected = options.expectedLength ?? null;
    this._buffer = new Uint8Array(0);
    this._index = 0;
    this._total = 0;
    this._final = false;
    this._failed = null;
  }

  /**
   * Consumes transport bytes and returns the plaintext of every record they complete.
   * @param {Uint8Array} bytes
   * @returns {Promise<Uint8Array[]>}
   */
  async push(bytes) {
    this._check();
    try {
      if (bytes.length > 0 && this._final) throw framing('bytes after the final record');
      this._buffer = this._buffer.length === 0 ? bytes : concat(this._buffer, bytes);
      const out = [];
      while (!this._final && this._buffer.length >= RECORD_HEADER_SIZE) {
        const b = this._buffer;
        const header = parseRecordHeader(((b[0] << 24) >>> 0) + (b[1] << 16) + (b[2] << 8) + b[3]);
        const recordSize = RECORD_HEADER_SIZE + header.length + TAG_SIZE;
        if (b.length < recordSize) break;
        out.push(await this._openRecord(header, b.subarray(RECORD_HEADER_SIZE, recordSize)));
        this._buffer = b.subarray(recordSize);
      }
      if (this._final && this._buffer.length > 0) throw framing('bytes after the final record');
      return out;
    } catch (error) {
      this._failed = error;
      throw error;
    }
  }

  /**
   * Declares end of input.
   * @throws {MteRelayError} when the final record never came (truncation) or the length is wrong
   */
  finish() {
    this._check();
    if (!this._final) this._failed = framing('truncated (no final record)');
    else if (this._expected !== null && this._total !== this._expected) this._failed = framing('length differs from content-length');
    this._check();
  }

  /** @private */
  _check() {
    if (this._failed) throw this._failed;
  }

  /** @private */
  async _openRecord(header, sealed) {
    const index = this._index;
    if (this._sized && !header.final && header.length !== CHUNK_SIZE) throw framing('short non-final record in sized mode');
    const plain = await open(this._key, nonce(PART_BODY, header.final, index), sealed, this._aadFor(index, header.final));
    this._index++;
    this._total += plain.length;
    this._final = header.final;
    if (this._expected !== null && this._total > this._expected) throw framing('longer than content-length');
    return plain;
  }
}
