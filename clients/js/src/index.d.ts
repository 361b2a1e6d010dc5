/**
 * pqrelay client: fetch-compatible requests sealed end to end to a pqrelay relay
 * (X-Wing pairing, AES-256-GCM). See README.md.
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
}

/** Per-request overrides. */
export type MteFetchOptions = Omit<MteRelayOptions, 'numberOfPairs' | 'maxPairs'>;

/** Codes carried by {@link MteRelayError}. */
export type MteRelayErrorCode =
  | 'not_a_relay'
  | 'cors_blocked'
  | 'version_unsupported'
  | 'pairing_failed'
  | 'decode_failed'
  | 'framing_failed'
  | 'invalid_header'
  | 'forbidden_header'
  | 'headers_too_large'
  | 'unsealed_response'
  | 'relay_error';

/** Error raised for protocol problems; network failures stay fetch's `TypeError`. */
export class MteRelayError extends Error {
  constructor(code: MteRelayErrorCode, message: string, details?: { status?: number; cause?: unknown });
  readonly name: 'MteRelayError';
  readonly code: MteRelayErrorCode;
  /** HTTP status of the relay's answer, when there was one. */
  readonly status: number | undefined;
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

/** Hex SHA-256 of a Blob/File or byte stream, computed chunk by chunk. */
export function sha256Stream(input: Blob | ReadableStream<Uint8Array>, onProgress?: (hashed: number) => void): Promise<string>;
