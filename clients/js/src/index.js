/**
 * pqrelay client: `fetch`-compatible requests whose URL, headers and body are sealed end to end to a
 * pqrelay relay, keyed by post-quantum (X-Wing) pairing. The vendor-compatible surface is
 * {@link initMteRelayClient} and {@link mteFetch}; errors are {@link MteRelayError} and
 * {@link MteOutcomeUnknownError}. Relay keys are pinned (`pins`) or trusted on first use;
 * {@link relayFingerprint} tells which key is in use.
 *
 * ```js
 * import { initMteRelayClient, mteFetch } from '/public/mte-relay-browser.js';
 * await initMteRelayClient({ relayUrl: 'https://relay.example.com' });
 * const res = await mteFetch('https://relay.example.com/api/login', {
 *   method: 'POST',
 *   headers: { 'content-type': 'application/json' },
 *   body: JSON.stringify({ user: 'ada' }),
 * });
 * console.log(res.status, await res.json());
 * ```
 * @module
 */
import { bytesEqual } from './_bytes.js';
import { prepareRequest, relayFetch } from './_fetch.js';
import { Relay } from './_relay.js';
import { parseFingerprint } from './_relay_key.js';
import { saveTrustedKeys } from './_store.js';

export { MteOutcomeUnknownError, MteRelayError } from './_errors.js';
export { sha256Stream } from './_hash.js';

/**
 * @typedef {object} UploadProgress
 * @property {number} loaded plain body bytes sent so far
 * @property {number | null} total plain body length, or null when unknown (streaming)
 */

/**
 * @typedef {object} MteRelayOptions
 * @property {string} [relayUrl] origin of the relay (default: the origin of each URL given to mteFetch)
 * @property {number} [numberOfPairs] pairs set up at start (default 5)
 * @property {number} [maxPairs] bound for pool growth (default: the relay's `max-pairs`)
 * @property {boolean} [encodeUrls] seal the path and query (default true)
 * @property {boolean | string[]} [encodeHeaders] true: seal every header the caller set; false: only
 *   content-type; a list: those names plus content-type (default true)
 * @property {(progress: UploadProgress) => void} [onUploadProgress] upload progress of request bodies
 * @property {(info: object) => void} [onWire] debug hook: what goes over the wire
 * @property {string[]} [pins] relay key fingerprints (`sha256:…`) to trust, and no other; without
 *   pins the client trusts the key it first pairs with, per relay origin (trust on first use)
 */

/** @type {Required<Pick<MteRelayOptions, 'numberOfPairs' | 'encodeUrls' | 'encodeHeaders'>> & MteRelayOptions} */
let defaults = { numberOfPairs: 5, encodeUrls: true, encodeHeaders: true };
/** @type {Uint8Array[] | null} the pinned key ids */
let pins = null;
/** @type {Map<string, Relay>} */
const relays = new Map();

function relayFor(origin) {
  let relay = relays.get(origin);
  if (!relay) {
    relay = new Relay(origin, { numberOfPairs: defaults.numberOfPairs, maxPairs: defaults.maxPairs, pins, onWire: (info) => defaults.onWire?.(info) });
    relays.set(origin, relay);
  }
  return relay;
}

const sameKeys = (a, b) => (a ?? []).length === (b ?? []).length && (a ?? []).every((k, i) => bytesEqual(k, b[i]));
const originOf = (url) => new URL(url ?? defaults.relayUrl ?? globalThis.location?.href).origin;

/**
 * Sets the client's defaults and, when `relayUrl` is given, discovers the relay and pairs the
 * initial pool now (otherwise that happens on the first mteFetch to each relay origin).
 * @param {MteRelayOptions} [options]
 * @returns {Promise<void>} resolves when the pool is ready
 * @throws {MteRelayError} `not_a_relay`, `cors_blocked`, `version_unsupported`, `pairing_failed`,
 *   `relay_key_invalid` (a pin that is not a fingerprint), and the hard errors `relay_key_not_trusted`
 *   and `pairing_not_confirmed` (naming the fingerprints)
 */
export async function initMteRelayClient(options = {}) {
  const numberOfPairs = options.numberOfPairs ?? defaults.numberOfPairs;
  if (!Number.isInteger(numberOfPairs) || numberOfPairs < 1) throw new RangeError('numberOfPairs must be a positive integer');
  if (options.maxPairs !== undefined && (!Number.isInteger(options.maxPairs) || options.maxPairs < 1)) throw new RangeError('maxPairs must be a positive integer');
  if (options.pins !== undefined) {
    if (!Array.isArray(options.pins)) throw new TypeError('pins must be an array of relay key fingerprints');
    const pinned = options.pins.length ? options.pins.map(parseFingerprint) : null;
    if (!sameKeys(pinned, pins)) {
      pins = pinned;
      relays.clear(); // pools paired under the old trust are not used again
    }
  }
  defaults = { ...defaults, ...options, numberOfPairs };
  if (options.relayUrl) await relayFor(new URL(options.relayUrl).origin).ready();
}

/**
 * Fingerprint (`sha256:…`) of the relay key the client's pairs with a relay were made with, once
 * it has paired (null before): what to compare with the fingerprint the relay's operator publishes.
 * @param {string} [relayUrl] the relay (default: `relayUrl` of initMteRelayClient, else the page's origin)
 * @returns {string | null}
 */
export function relayFingerprint(relayUrl) {
  return relays.get(originOf(relayUrl))?.fingerprint ?? null;
}

/**
 * Forgets the relay keys trusted on first use for a relay (and its pairs): the next request trusts
 * the key the relay offers first, as at first contact. Pins are not affected.
 * @param {string} [relayUrl] the relay (default as for {@link relayFingerprint})
 */
export function clearRelayTrust(relayUrl) {
  const origin = originOf(relayUrl);
  saveTrustedKeys(origin, null);
  relays.delete(origin);
}

/**
 * `fetch` through the relay: same arguments as `fetch`, resolves with a real `Response` carrying the
 * upstream's status, headers and (streamed) body. Read or cancel every body: its pair stays busy
 * until then. Relay errors are recovered from invisibly where PROTOCOL.md §12 allows it: idempotent
 * requests are re-paired and sent again once; a request that is not idempotent is never run twice,
 * and when its fate is unknown the call rejects with {@link MteOutcomeUnknownError}. The relay's
 * other errors (400, 413, 502, ...) come back as plain responses, as from fetch.
 * @param {RequestInfo | URL} url absolute, or relative to the page
 * @param {RequestInit} [init] fetch options; `credentials` is used as given (cookies work)
 * @param {MteRelayOptions} [mteOptions] per-request overrides (`relayUrl`, `encodeUrls`,
 *   `encodeHeaders`, `onUploadProgress`, `onWire`)
 * @returns {Promise<Response>}
 * @throws {MteRelayError} protocol failures; {@link MteOutcomeUnknownError} when a non-idempotent
 *   request may or may not have run; `TypeError` for network failures of idempotent requests, as fetch
 */
export async function mteFetch(url, init, mteOptions = {}) {
  const settings = { ...defaults, ...mteOptions };
  const prepared = await prepareRequest(url, init);
  const origin = settings.relayUrl ? new URL(settings.relayUrl).origin : prepared.url.origin;
  return relayFetch(relayFor(origin), prepared, settings);
}
