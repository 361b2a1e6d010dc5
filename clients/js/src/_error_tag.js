/**
 * Authenticated error replies (PROTOCOL.md §11.2). Once the relay has derived the keys of the
 * request's counter, its error replies carry a verdict and a tag:
 *
 * ```
 * x-mte-relay-verdict: dead | unknown | partial | complete
 * x-mte-relay-tag: b64(HMAC(ke_m, "pqrelay/2 error" || id || pid || u64(m) || u16(status)
 *                           || u8(len(code)) || code || u8(verdict)))
 * ```
 * A reply whose tag is missing or does not verify says nothing about the request's fate.
 * @module
 */
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { b64decode, bytesEqual, concat, u16, u64, u8, utf8 } from './_bytes.js';
import { MteRelayError } from './_errors.js';

const ERROR_LABEL = /* @__PURE__ */ utf8('pqrelay/2 error');
/** Verdicts, in the order of their byte values. */
export const VERDICTS = /** @type {const} */ (['dead', 'unknown', 'partial', 'complete']);
const TAG_SIZE = 32;

const unauthenticated = (message) => new MteRelayError('error_unauthenticated', `unauthenticated error reply: ${message}`);

/**
 * The MAC input of an error tag.
 * @param {{ id: Uint8Array, pid: Uint8Array, counter: bigint, status: number, code: string, verdict: string }} e
 * @returns {Uint8Array}
 * @throws {MteRelayError} `error_unauthenticated` for a code over 255 bytes or an unknown verdict
 */
export function errorTagMessage(e) {
  const code = utf8(e.code);
  const verdict = VERDICTS.indexOf(/** @type {any} */ (e.verdict));
  if (code.length > 0xff) throw unauthenticated('code over 255 bytes');
  if (verdict < 0) throw unauthenticated(`unknown verdict ${JSON.stringify(e.verdict)}`);
  return concat(ERROR_LABEL, e.id, e.pid, u64(e.counter), u16(e.status), u8(code.length), code, u8(verdict));
}

/**
 * The tag of an error reply.
 * @param {Uint8Array} ke the error key `ke_m`
 * @param {Parameters<typeof errorTagMessage>[0]} e
 * @returns {Uint8Array}
 */
export const errorTag = (ke, e) => hmac(sha256, ke, errorTagMessage(e));

/**
 * Verifies an error reply for the request sent with (`id`, `pid`, `counter`) and key `ke`.
 * @param {Uint8Array} ke
 * @param {{ id: Uint8Array, pid: Uint8Array, counter: bigint, status: number, code: string | null, verdict: string | null, tag: string | null }} reply
 *   `code`, `verdict`, `tag`: the values of `x-mte-relay-error`, `x-mte-relay-verdict`, `x-mte-relay-tag` (null: absent)
 * @returns {'dead' | 'unknown' | 'partial' | 'complete'} the authenticated verdict
 * @throws {MteRelayError} `error_unauthenticated`
 */
export function verifyErrorReply(ke, reply) {
  if (reply.code === null || reply.verdict === null || reply.tag === null) throw unauthenticated('code, verdict or tag missing');
  let tag;
  try {
    tag = b64decode(reply.tag);
  } catch {
    throw unauthenticated('tag is not base64url');
  }
  if (tag.length !== TAG_SIZE) throw unauthenticated('tag of the wrong length');
  const expected = errorTag(ke, { ...reply, code: reply.code, verdict: reply.verdict });
  if (!bytesEqual(expected, tag)) throw unauthenticated('tag does not verify');
  return /** @type {any} */ (reply.verdict);
}
