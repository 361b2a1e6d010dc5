/**
 * The one error class the client throws for protocol problems.
 *
 * ```
 * Error
 * └── MteRelayError            err.code says what happened:
 *       not_a_relay            discovery answered without `x-mte-relay` (the server is not a pqrelay)
 *       cors_blocked           discovery failed at the network level (often: origin not allowed by CORS)
 *       version_unsupported    the relay does not offer protocol version 1
 *       pairing_failed         `POST /api/mte-pair` failed or answered something malformed
 *       decode_failed          a sealed item from the relay did not open (tampering or wrong keys),
 *                              or opened to something malformed
 *       framing_failed         a sealed body is malformed (bad record header, truncated, trailing bytes)
 *       invalid_header         `x-mte-relay` or `x-mte-relay-info` is malformed, or answers another exchange
 *       forbidden_header       a sealed header block holds a name or value that is not allowed
 *       headers_too_large      a sealed header block is over 16 KiB
 *       unsealed_response      a success response arrived without `x-mte-relay`
 *       relay_error            the relay kept answering a 559–569 error after re-pairing / retrying
 * ```
 * Ordinary network failures of an exchange are passed through as the `TypeError` fetch throws.
 * @module
 */

/** Error raised by the pqrelay client; `code` is one of the codes above. */
export class MteRelayError extends Error {
  /**
   * @param {string} code machine-readable reason
   * @param {string} message human-readable explanation
   * @param {{ status?: number, cause?: unknown }} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MteRelayError';
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} HTTP status of the relay's answer, when there was one */
    this.status = details.status;
  }
}
