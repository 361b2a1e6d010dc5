/**
 * The errors the client throws for protocol problems.
 *
 * ```
 * Error
 * └── MteRelayError            err.code says what happened:
 *     │ not_a_relay            discovery answered without `x-mte-relay` (the server is not a pqrelay)
 *     │ cors_blocked           discovery failed at the network level (often: origin not allowed by CORS)
 *     │ version_unsupported    the relay does not offer protocol version 2 (or other fixed parameters)
 *     │ relay_info_invalid     `x-mte-relay-info` is malformed
 *     │ relay_key_invalid      `x-mte-relay-keys` is malformed, or a pin is not a fingerprint
 *     │ relay_key_not_trusted  the relay offers no key that is pinned or trusted (hard error)
 *     │ pairing_not_confirmed  the pairing answer did not prove the holder of the relay key (hard error)
 *     │ pairing_failed         `POST /api/mte-pair` failed (network, status) before an answer to check
 *     │ decode_failed          a sealed item from the relay did not open (tampering or wrong keys),
 *     │                        or opened to something malformed
 *     │ framing_failed         a sealed body is malformed (bad record header, truncated, trailing bytes)
 *     │ invalid_header         `x-mte-relay` is malformed, or answers another exchange
 *     │ forbidden_header       a sealed header block holds a name or value that is not allowed
 *     │ headers_too_large      a sealed header block is over 16 KiB
 *     │ unsealed_response      a success response arrived without sealed headers
 *     │ error_unauthenticated  an error reply whose tag does not verify (says nothing about the request)
 *     │ relay_error            the relay kept answering a 559–569 error after recovery
 *     └── MteOutcomeUnknownError   code `outcome_unknown`: a non-idempotent request may or may not
 *                                  have reached the upstream (PROTOCOL.md §12); never sent again
 * ```
 * `err.reason` carries a finer reason where one code covers several (e.g. `mismatch`,
 * `non_contributory`, `malformed` for `pairing_not_confirmed`). Ordinary network failures of an
 * idempotent exchange are passed through as the `TypeError` fetch throws.
 * @module
 */

/** Error raised by the pqrelay client; `code` is one of the codes above. */
export class MteRelayError extends Error {
  /**
   * @param {string} code machine-readable reason
   * @param {string} message human-readable explanation
   * @param {{ status?: number, cause?: unknown, reason?: string, fingerprint?: string, trusted?: string[], offered?: string[] }} [details]
   */
  constructor(code, message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'MteRelayError';
    /** @type {string} */
    this.code = code;
    /** @type {number | undefined} HTTP status of the relay's answer, when there was one */
    this.status = details.status;
    /** @type {string | undefined} finer reason, when there is one */
    this.reason = details.reason;
    /** @type {string | undefined} the relay key fingerprint concerned (pairing errors) */
    this.fingerprint = details.fingerprint;
    /** @type {string[] | undefined} the fingerprints the client trusts (relay_key_not_trusted) */
    this.trusted = details.trusted;
    /** @type {string[] | undefined} the fingerprints the relay offered (relay_key_not_trusted) */
    this.offered = details.offered;
  }
}

/**
 * A non-idempotent request whose fate is unknown: the upstream may or may not have run it, and the
 * client will not send it again (that could run it twice). `cause` is the last failure seen.
 */
export class MteOutcomeUnknownError extends MteRelayError {
  /**
   * @param {string} message
   * @param {{ status?: number, cause?: unknown }} [details]
   */
  constructor(message, details = {}) {
    super('outcome_unknown', message, details);
    this.name = 'MteOutcomeUnknownError';
  }
}
