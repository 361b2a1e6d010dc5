/**
 * pqrelay client: fetch-compatible requests sealed end to end to a pqrelay relay
 * (protocol version 2: X-Wing pairing confirmed by the relay key, AES-256-GCM). See README.md.
 */

/** Upload progress of a request body, in plain bytes. */
export interface UploadProgress {
  /** Plain body bytes sent so far. */
  loaded: number;
  /** Plain body length, or null when unknown (streaming mode). */
  total: number | null;
}

/** What went over the wire (debug hook `onWire`). */
export type WireInfo =
  | {
      direction: 'request';
      method: string;
      /** The wire URL: relay origin + sealed (or plain) target. */
      url: string;
      /** Wire request headers (`x-mte-relay`, `x-mte-relay-eh`, plain ones). */
      headers: Record<string, string>;
      /** First bytes (≤ 64) of the sealed body, or null without a body. */
      bodyStart: Uint8Array | null;
    }
  | {
      direction: 'response';
      status: number;
      /** Wire response headers as the page can see them. */
      headers: Record<string, string>;
    }
  | {
      /**
       * A discovery or pairing was refused with 429 (`rate_limited`) or 503 (`pairing_busy`): the
       * client waits `Retry-After` (at most 10 s, 1 s when absent) plus up to 250 ms of jitter, then
       * sends it again, at most 3 attempts in all (PROTOCOL.md §11.1). Reported to the `onWire` of
       * initMteRelayClient.
       */
      direction: 'retry-after';
      request: 'discovery' | 'pairing';
      /** 429 or 503. */
      status: number;
      /** The attempt that was refused (1 for the first). */
      attempt: number;
      /** The wait before the next attempt, jitter included. */
      waitMs: number;
    };

/** Client options; every field may also be given per request in `mteOptions`. */
export interface MteRelayOptions {
  /** Origin of the relay. Default: the origin of each URL passed to mteFetch. */
  relayUrl?: string;
  /** Pairs set up at start. Default 5. */
  numberOfPairs?: number;
  /** Bound for pool growth. Default: the relay's `max-pairs`. */
  maxPairs?: number;
  /** Seal the path and query. Default true. */
  encodeUrls?: boolean;
  /**
   * true: seal every header the caller set; false: only content-type; a list: those names plus
   * content-type. content-type is always sealed. Default true.
   */
  encodeHeaders?: boolean | string[];
  /** Upload progress of request bodies. */
  onUploadProgress?: (progress: UploadProgress) => void;
  /** Debug hook: what goes over the wire. */
  onWire?: (info: WireInfo) => void;
  /**
   * Relay key fingerprints (`sha256:` + 43 base64url characters) to trust, and no other. Without
   * pins the client trusts, per relay origin, the key it first paired with (trust on first use,
   * stored beside the client id). A relay that offers no trusted key is a hard error
   * (`relay_key_not_trusted`), never a silent re-pair.
   */
  pins?: string[];
}

/** Per-request overrides. */
export type MteFetchOptions = Omit<MteRelayOptions, 'numberOfPairs' | 'maxPairs' | 'pins'>;

/** Codes carried by {@link MteRelayError}. */
export type MteRelayErrorCode =
  | 'not_a_relay'
  | 'cors_blocked'
  | 'version_unsupported'
  | 'relay_info_invalid'
  | 'relay_key_invalid'
  | 'relay_key_not_trusted'
  | 'pairing_not_confirmed'
  | 'pairing_failed'
  | 'decode_failed'
  | 'framing_failed'
  | 'invalid_header'
  | 'invalid_method'
  | 'forbidden_header'
  | 'headers_too_large'
  | 'unsealed_response'
  | 'error_unauthenticated'
  | 'relay_error'
  | 'outcome_unknown';

/** Error raised for protocol problems; network failures of idempotent requests stay fetch's `TypeError`. */
export class MteRelayError extends Error {
  constructor(
    code: MteRelayErrorCode,
    message: string,
    details?: { status?: number; cause?: unknown; reason?: string; fingerprint?: string; trusted?: string[]; offered?: string[] },
  );
  readonly name: 'MteRelayError' | 'MteOutcomeUnknownError';
  readonly code: MteRelayErrorCode;
  /** HTTP status of the relay's answer, when there was one. */
  readonly status: number | undefined;
  /** A finer reason where one code covers several (e.g. `mismatch` for `pairing_not_confirmed`). */
  readonly reason: string | undefined;
  /** The relay key concerned (`relay_key_not_trusted`: the first trusted one; `pairing_not_confirmed`: the key paired with). */
  readonly fingerprint: string | undefined;
  /** `relay_key_not_trusted`: the fingerprints the client trusts. */
  readonly trusted: string[] | undefined;
  /** `relay_key_not_trusted`: the fingerprints the relay offered. */
  readonly offered: string[] | undefined;
}

/**
 * A request that is not idempotent (POST, PATCH, … without `idempotency-key`) whose fate is
 * unknown: the upstream may or may not have run it, and the client does not send it again (that
 * could run it twice). `cause` is the last failure seen, `status` the relay's status if any.
 */
export class MteOutcomeUnknownError extends MteRelayError {
  constructor(message: string, details?: { status?: number; cause?: unknown });
  readonly name: 'MteOutcomeUnknownError';
  readonly code: 'outcome_unknown';
}

/**
 * Sets the defaults and, when `relayUrl` is given, discovers the relay and pairs the initial pool.
 */
export function initMteRelayClient(options?: MteRelayOptions): Promise<void>;

/**
 * fetch through the relay. Resolves with a real Response (decoded status, headers, streamed body).
 * Read or cancel every body: its pair stays busy until then.
 */
export function mteFetch(url: RequestInfo | URL, init?: RequestInit, mteOptions?: MteFetchOptions): Promise<Response>;

/**
 * Fingerprint (`sha256:…`) of the relay key the pairs with a relay were made with, or null before
 * the first pairing. Default relay: `relayUrl` of initMteRelayClient, else the page's origin.
 */
export function relayFingerprint(relayUrl?: string): string | null;

/**
 * Forgets the relay keys trusted on first use for a relay (and its pairs); pins are not affected.
 */
export function clearRelayTrust(relayUrl?: string): void;

/** Hex SHA-256 of a Blob/File or byte stream, computed chunk by chunk. */
export function sha256Stream(input: Blob | ReadableStream<Uint8Array>, onProgress?: (hashed: number) => void): Promise<string>;
