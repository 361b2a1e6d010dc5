/**
 * Incremental SHA-256 over a Blob or a byte stream, chunk by chunk (constant memory), for pages
 * that check an upload against what the upstream received.
 * @module
 */
import { bytesToHex } from '@noble/hashes/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { blobSource, streamSource } from './_body.js';

/**
 * Hex SHA-256 of a Blob/File or a ReadableStream of bytes.
 * @param {Blob | ReadableStream<Uint8Array>} input
 * @param {(hashed: number) => void} [onProgress] bytes hashed so far
 * @returns {Promise<string>} lowercase hex digest
 */
export async function sha256Stream(input, onProgress) {
  const hash = sha256.create();
  let hashed = 0;
  const source = input instanceof Blob ? blobSource(input) : streamSource(input);
  for await (const chunk of source.chunks()) {
    hash.update(chunk);
    hashed += chunk.length;
    onProgress?.(hashed);
  }
  return bytesToHex(hash.digest());
}
