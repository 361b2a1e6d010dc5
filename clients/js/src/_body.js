/**
 * Request bodies: turning what the caller passed to `mteFetch` into a replayable (or not) source of
 * plain bytes, and sealing that source into STREAM records (sized or streaming mode, PROTOCOL.md §9).
 * @module
 */
import { concat } from './_bytes.js';
import { CHUNK_SIZE } from './_stream.js';

/**
 * Plain request body.
 * @typedef {object} BodySource
 * @property {number | null} size plain length when known (sized mode), else null (streaming mode)
 * @property {boolean} replayable whether {@link BodySource#chunks} can be called again for a retry
 * @property {() => AsyncIterable<Uint8Array>} chunks the plain bytes, in pieces of any size
 */

/**
 * @param {Uint8Array} bytes
 * @returns {BodySource}
 */
export function bytesSource(bytes) {
  return {
    size: bytes.length,
    replayable: true,
    async *chunks() {
      for (let o = 0; o < bytes.length; o += CHUNK_SIZE) yield bytes.subarray(o, o + CHUNK_SIZE);
    },
  };
}

/**
 * Reads a Blob (or File) slice by slice, never holding more than one chunk.
 * @param {Blob} blob
 * @returns {BodySource}
 */
export function blobSource(blob) {
  return {
    size: blob.size,
    replayable: true,
    async *chunks() {
      for (let o = 0; o < blob.size; o += CHUNK_SIZE) {
        yield new Uint8Array(await blob.slice(o, o + CHUNK_SIZE).arrayBuffer());
      }
    },
  };
}

/**
 * A ReadableStream of bytes of unknown length: streaming mode, not replayable.
 * @param {ReadableStream<Uint8Array>} stream
 * @returns {BodySource}
 */
export function streamSource(stream) {
  return {
    size: null,
    replayable: false,
    async *chunks() {
      const reader = stream.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          yield toBytes(value);
        }
      } finally {
        reader.releaseLock();
      }
    },
  };
}

/**
 * @param {ArrayBuffer | ArrayBufferView} value
 * @returns {Uint8Array}
 */
export function toBytes(value) {
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError('body stream chunks must be bytes');
}

/**
 * Re-cuts a source into the plaintext of each record, with its `final` flag. Sized mode (size
 * known): full chunks, the last one final (an empty final chunk only for an empty body); the source
 * must yield exactly `size` bytes. Streaming mode: every piece the source yields (cut to CHUNK_SIZE)
 * becomes a non-final record as soon as it arrives, then an empty final record.
 * @param {BodySource} source
 * @returns {AsyncGenerator<{ chunk: Uint8Array, final: boolean }>}
 */
export async function* recordPlaintexts(source) {
  if (source.size === null) {
    for await (const piece of source.chunks()) {
      for (let o = 0; o < piece.length; o += CHUNK_SIZE) yield { chunk: piece.subarray(o, o + CHUNK_SIZE), final: false };
    }
    yield { chunk: new Uint8Array(0), final: true };
    return;
  }
  const total = source.size;
  let sent = 0;
  let pending = new Uint8Array(0);
  for await (const piece of source.chunks()) {
    pending = pending.length === 0 ? piece : concat(pending, piece);
    while (pending.length >= CHUNK_SIZE && sent + CHUNK_SIZE < total) {
      yield { chunk: pending.subarray(0, CHUNK_SIZE), final: false };
      sent += CHUNK_SIZE;
      pending = pending.subarray(CHUNK_SIZE);
    }
    if (sent + pending.length > total) throw new RangeError('request body is longer than its declared size');
  }
  if (sent + pending.length !== total) throw new RangeError('request body is shorter than its declared size');
  yield { chunk: pending, final: true };
}

