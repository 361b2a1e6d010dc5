/**
 * One relay origin: discovery (`HEAD /api/mte-relay`), pairing (`POST /api/mte-pair`) and the pool
 * of pairs, with at most one exchange in flight per pair. Waiting requests queue; the pool grows on
 * demand, one pair at a time, up to its bound.
 * @module
 */
import { MteRelayError } from './_errors.js';
import { formatDiscoveryHeader, parseRelayHeaderAs, parseRelayInfo, VERSION } from './_headers.js';
import { completePair, decodePairingResponse, encodePairingRequest } from './_pairing.js';
import { SEED_SIZE } from './_kem.js';
import { MAX_COUNTER } from './_schedule.js';
import { CHUNK_SIZE } from './_stream.js';
import { loadToken, saveToken } from './_store.js';

const PAIR_ID_SIZE = 16;
const CLIENT_ID_ERRORS = new Set([560, 566]);

/**
 * A pair's ratchet state on the client. `counter`/`chainKey` are the next values to use.
 * @typedef {object} Pair
 * @property {Uint8Array} pid
 * @property {bigint} counter
 * @property {Uint8Array} chainKey
 * @property {number} generation pool generation it belongs to (pairs of an older one are discarded)
 */

const random = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** Connection to one relay origin. */
export class Relay {
  /**
   * @param {string} origin e.g. `https://relay.example.com`
   * @param {{ numberOfPairs: number, maxPairs?: number }} options
   */
  constructor(origin, options) {
    this.origin = origin;
    this._numberOfPairs = options.numberOfPairs;
    this._maxPairsOption = options.maxPairs;
    /** @type {string | null} */
    this.token = null;
    /** @type {Uint8Array | null} */
    this.id = null;
    /** @type {import('./_headers.js').RelayInfo | null} */
    this.info = null;
    this._generation = 0;
    /** @type {Pair[]} */
    this._idle = [];
    this._size = 0; // live pairs of the current generation (idle + busy)
    this._pairing = 0; // pairs being paired right now
    /** @type {Array<{ resolve: (p: Pair) => void, reject: (e: unknown) => void }>} */
    this._waiters = [];
    /** @type {Promise<void> | null} */
    this._ready = null;
  }

  /** Bound on the pool size: the `maxPairs` option, else the relay's `max-pairs`. */
  get maxPairs() {
    return this._maxPairsOption ?? this.info?.maxPairs ?? this._numberOfPairs;
  }

  /**
   * Discovers and pairs the initial pool once; later calls share the same promise. A failed start
   * is forgotten so that the next call tries again.
   * @returns {Promise<void>}
   */
  ready() {
    if (!this._ready) {
      this._ready = this._start().catch((error) => {
        this._ready = null;
        throw error;
      });
    }
    return this._ready;
  }

  /**
   * Takes a pair for one exchange, waiting (and growing the pool) when all are busy.
   * @returns {Promise<Pair>}
   */
  async acquire() {
    await this.ready();
    for (;;) {
      const pair = this._idle.pop();
      if (!pair) break;
      if (pair.counter <= MAX_COUNTER) return pair;
      this.drop(pair); // counter exhausted: re-pair
    }
    return new Promise((resolve, reject) => {
      this._waiters.push({ resolve, reject });
      if (this._size + this._pairing < this.maxPairs) this._grow(1);
    });
  }

  /**
   * Gives a pair back after its exchange finished (response fully read, cancelled or failed).
   * @param {Pair} pair
   */
  release(pair) {
    if (pair.generation !== this._generation) return;
    const waiter = this._waiters.shift();
    if (waiter) waiter.resolve(pair);
    else this._idle.push(pair);
  }

  /**
   * Forgets a pair the relay no longer accepts and pairs a replacement.
   * @param {Pair} pair
   */
  drop(pair) {
    if (pair.generation !== this._generation) return;
    pair.chainKey.fill(0);
    this._size--;
    this._grow(1);
  }

  /**
   * Forgets a pair the relay no longer accepts and pairs its replacement for the caller: a retry
   * after 559/561–565 runs on the re-paired pair, never on another pair of the pool (after a relay
   * restart every old pair is stale; PROTOCOL.md §11). Falls back to an ordinary `acquire` when the
   * pool was reset meanwhile.
   * @param {Pair} pair
   * @returns {Promise<Pair>} the new pair, busy for the caller's exchange
   */
  async renew(pair) {
    if (pair.generation !== this._generation) return this.acquire();
    pair.chainKey.fill(0);
    this._size--;
    const generation = this._generation;
    this._pairing++;
    let pairs;
    try {
      pairs = await this._pairWithRediscovery(1);
    } finally {
      this._pairing--;
    }
    if (generation !== this._generation) return this.acquire();
    this._size++;
    return { ...pairs[0], generation };
  }

  /**
   * Forgets every pair (and, with `rediscover`, the client id's verification) and starts over.
   * Several exchanges failing together trigger a single reset: only a pair of the current
   * generation starts one.
   * @param {Pair} pair the pair whose exchange reported the problem
   * @param {{ rediscover: boolean }} how
   * @returns {Promise<void>}
   */
  reset(pair, how) {
    if (pair.generation === this._generation) {
      this._generation++;
      for (const p of this._idle) p.chainKey.fill(0);
      this._idle = [];
      this._size = 0;
      this._ready = (how.rediscover ? this._start() : this._fill()).catch((error) => {
        this._ready = null;
        this._failWaiters(error);
        throw error;
      });
    }
    return this.ready();
  }

  async _start() {
    await this.discover();
    await this._fill();
  }

  async _fill() {
    // One pairing request carries at most the relay's max-pairs.
    const count = Math.max(1, Math.min(this._numberOfPairs, this.maxPairs, this.info?.maxPairs ?? Infinity));
    const generation = this._generation;
    this._pairing += count;
    let pairs;
    try {
      pairs = await this._pairWithRediscovery(count);
    } finally {
      this._pairing -= count;
    }
    if (generation !== this._generation) return;
    this._size += pairs.length;
    for (const p of pairs) this.release({ ...p, generation });
  }

  _grow(count) {
    const generation = this._generation;
    this._pairing += count;
    this._pairWithRediscovery(count).then(
      (pairs) => {
        this._pairing -= count;
        if (generation !== this._generation) return;
        this._size += pairs.length;
        for (const p of pairs) this.release({ ...p, generation });
      },
      (error) => {
        this._pairing -= count;
        if (this._size === 0 && this._pairing === 0) this._failWaiters(error);
        else this._waiters.shift()?.reject(error);
      },
    );
  }

  _failWaiters(error) {
    for (const w of this._waiters.splice(0)) w.reject(error);
  }

  /**
   * `HEAD /api/mte-relay`: learns (or renews) the client token and the relay's parameters.
   * @returns {Promise<void>}
   */
  async discover() {
    const stored = loadToken(this.origin);
    /** @type {Record<string, string>} */
    const headers = stored ? { 'x-mte-relay': formatDiscoveryHeader(stored) } : {};
    let res;
    try {
      res = await fetch(`${this.origin}/api/mte-relay`, { method: 'HEAD', headers });
    } catch (cause) {
      throw new MteRelayError(
        'cors_blocked',
        `could not reach the relay at ${this.origin}: the network failed, or this page's origin is not allowed by the relay's CORS_ORIGINS`,
        { cause },
      );
    }
    const value = res.headers.get('x-mte-relay');
    if (!value) {
      throw new MteRelayError(
        'not_a_relay',
        `${this.origin} is not a pqrelay: HEAD /api/mte-relay answered ${res.status} without an x-mte-relay header (or the header is not exposed through CORS)`,
        { status: res.status },
      );
    }
    const { token, id } = parseRelayHeaderAs(value, 'discovery');
    const info = parseRelayInfo(res.headers.get('x-mte-relay-info') ?? '');
    if (!info.versions.includes(Number(VERSION)) || info.chunkSize !== CHUNK_SIZE) {
      throw new MteRelayError('version_unsupported', `the relay at ${this.origin} does not offer protocol version ${VERSION} (info: versions=${info.versions.join(',')};chunk-size=${info.chunkSize})`);
    }
    this.info = info;
    this.token = token;
    this.id = id;
    saveToken(this.origin, token);
  }

  /**
   * Stores a token the relay returned, if it re-signed ours (same id).
   * @param {string} token
   * @param {Uint8Array} id
   * @returns {boolean} false when the id is not ours
   */
  acceptToken(token, id) {
    if (!this.id || id.length !== this.id.length || !id.every((b, i) => b === this.id[i])) return false;
    if (token !== this.token) {
      this.token = token;
      saveToken(this.origin, token);
    }
    return true;
  }

  async _pairWithRediscovery(count) {
    try {
      return await this._pair(count);
    } catch (error) {
      if (!(error instanceof MteRelayError) || !CLIENT_ID_ERRORS.has(error.status ?? 0)) throw error;
      await this.discover();
      return this._pair(count);
    }
  }

  /**
   * `POST /api/mte-pair` for `count` fresh pairs.
   * @param {number} count
   * @returns {Promise<Array<{ pid: Uint8Array, counter: bigint, chainKey: Uint8Array }>>}
   */
  async _pair(count) {
    const secrets = Array.from({ length: count }, () => ({ pid: random(PAIR_ID_SIZE), seed: random(SEED_SIZE) }));
    try {
      const id = this.id;
      let res;
      try {
        res = await fetch(`${this.origin}/api/mte-pair`, {
          method: 'POST',
          headers: { 'x-mte-relay': formatDiscoveryHeader(this.token), 'content-type': 'application/json' },
          body: encodePairingRequest(secrets),
        });
      } catch (cause) {
        throw new MteRelayError('pairing_failed', `pairing with ${this.origin} failed: ${cause?.message ?? cause}`, { cause });
      }
      const text = await res.text();
      if (!res.ok) {
        throw new MteRelayError('pairing_failed', `pairing with ${this.origin} answered ${res.status}: ${text.slice(0, 200)}`, { status: res.status });
      }
      const header = res.headers.get('x-mte-relay');
      if (header) {
        const renewed = parseRelayHeaderAs(header, 'discovery');
        if (!this.acceptToken(renewed.token, renewed.id)) throw new MteRelayError('pairing_failed', 'pairing answered for another client id');
      }
      const cts = decodePairingResponse(text, secrets);
      return secrets.map((s, i) => ({ pid: s.pid, counter: 0n, chainKey: completePair(s, cts[i], id) }));
    } finally {
      for (const s of secrets) s.seed.fill(0);
    }
  }
}
