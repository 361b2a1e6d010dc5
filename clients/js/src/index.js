/**
 * pqrelay client: `fetch`-compatible requests whose URL, headers and body are sealed end to end to a
 * pqrelay relay, keyed by post-quantum (X-Wing) pairing. The vendor-compatible surface is
 * {@link initMteRelayClient} and {@link mteFetch}; errors are {@link MteRelayError}.
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
import { prepareRequest, relayFetch } from './_fetch.js';
import { Relay } from './_relay.js';

export { MteRelayError } from './_errors.js';
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
 */

/** @type {Required<Pick<MteRelayOptions, 'numberOfPairs' | 'encodeUrls' | 'encodeHeaders'>> & MteRelayOptions} */
let defaults = { numberOfPairs: 5, encodeUrls: true, encodeHeaders: true };
/** @type {Map<string, Relay>} */
const relays = new Map();

function relayFor(origin) {
  let relay = relays.get(origin);
  if (!relay) {
    relay = new Relay(origin, { numberOfPairs: defaults.numberOfPairs, maxPairs: defaults.maxPairs });
    relays.set(origin, relay);
  }
  return relay;
}

/**
 * Sets the client's defaults and, when `relayUrl` is given, discovers the relay and pairs the
 * initial pool now (otherwise that happens on the first mteFetch to each relay origin).
 * @param {MteRelayOptions} [options]
 * @returns {Promise<void>} resolves when the pool is ready
 * @throws {MteRelayError} `not_a_relay`, `cors_blocked`, `version_unsupported`, `pairing_failed`
 */
export async function initMteRelayClient(options = {}) {
  const numberOfPairs = options.numberOfPairs ?? 5;
  if (!Number.isInteger(numberOfPairs) || numberOfPairs < 1) throw new RangeError('numberOfPairs must be a positive integer');
  if (options.maxPairs !== undefined && (!Number.isInteger(options.maxPairs) || options.maxPairs < 1)) throw new RangeError('maxPairs must be a positive integer');
  defaults = { ...defaults, ...options, numberOfPairs };
  if (options.relayUrl) await relayFor(new URL(options.relayUrl).origin).ready();
}

/**
 * `fetch` through the relay: same arguments as `fetch`, resolves with a real `Response` carrying the
 * upstream's status, headers and (streamed) body. Read or cancel every body: its pair stays busy
 * until then. Relay errors 559–569 are recovered from invisibly (re-pair / re-discover, one retry
 * when the body can be replayed); the relay's other errors (400, 413, 502, ...) come back as plain
 * responses, as from fetch.
 * @param {RequestInfo | URL} url absolute, or relative to the page
 * @param {RequestInit} [init] fetch options; `credentials` is used as given (cookies work)
 * @param {MteRelayOptions} [mteOptions] per-request overrides (`relayUrl`, `encodeUrls`,
 *   `encodeHeaders`, `onUploadProgress`, `onWire`)
 * @returns {Promise<Response>}
 * @throws {MteRelayError} protocol failures; `TypeError` for network failures, as fetch
 */
export async function mteFetch(url, init, mteOptions = {}) {
  const settings = { ...defaults, ...mteOptions };
  const prepared = await prepareRequest(url, init);
  const origin = settings.relayUrl ? new URL(settings.relayUrl).origin : prepared.url.origin;
  return relayFetch(relayFor(origin), prepared, settings);
}
