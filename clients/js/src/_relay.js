/**
 * One relay origin: discovery (`HEAD /api/mte-relay`), the choice of a trusted relay key (pins, or
 * trust on first use), pairing (`POST /api/mte-pair`, confirmed before use) and the pool of pairs,
 * with at most one exchange in flight per pair. Waiting requests queue; the pool grows on demand,
 * one pair at a time, up to its bound.
 * @module
 */
import { bytesEqual } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { formatDiscoveryHeader, parseRelayHeaderAs, parseRelayInfo } from './_headers.js';
import { ESEED_SIZE, SEED_SIZE } from './_kem.js';
import { MAX_PAIRS_PER_REQUEST, PAIR_ID_SIZE, startPairing } from './_pairing.js';
import { chooseRelayKey, formatFingerprint, parseFingerprint, parseRelayKeys } from './_relay_key.js';
import { MAX_COUNTER } from './_schedule.js';
import { loadToken, loadTrustedKeys, saveToken, saveTrustedKeys } from './_store.js';

const CLIENT_ID_ERRORS = new Set([560, 566]);
/**
 * Most attempts of one discovery or pairing request the relay refuses with 429 (`rate_limited`) or
 * 503 (`pairing_busy`, ...): the first, and after each refusal its `Retry-After` wait and one more
 * (PROTOCOL.md §11.1). The last refusal goes to the caller as today. A refused pairing created no
 * pair, so sending it again (fresh pair ids) is safe; sealed exchanges are never sent again for this.
 */
export const PAIRING_ATTEMPTS = 3;
/** Longest `Retry-After` honoured, in ms. */
export const MAX_RETRY_AFTER_MS = 10_000;
/** Most random jitter added to a `Retry-After` wait, in ms (0 to this). */
export const RETRY_JITTER_MS = 250;

/**
 * The wait before sending a discovery or pairing answered `status` again, jitter not included: null
 * unless 429 or 503; else `Retry-After` in delta-seconds, at most {@link MAX_RETRY_AFTER_MS}, and 1 s
 * when absent or not delta-seconds (an HTTP-date is not honoured).
 * @param {number} status
 * @param {string | null} retryAfter the header's value
 * @returns {number | null} ms
 */
export function retryAfterMs(status, retryAfter) {
  if (status !== 429 && status !== 503) return null;
  const value = retryAfter?.trim() ?? '';
  const seconds = /^[0-9]+$/.test(value) ? Number(value) : 1;
  return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
}
/** Most key ids kept as trusted on first use per origin (newest first). */
const MAX_STORED_KEYS = 32;

/**
 * A pair's ratchet state on the client. `counter`/`chainKey` are the next values to use.
 * @typedef {object} Pair
 * @property {Uint8Array} pid
 * @property {bigint} counter
 * @property {Uint8Array} chainKey
 * @property {number} generation pool generation it belongs to (pairs of an older one are discarded)
 * @property {number} seq number of the pairing request that made it (higher: paired later)
 */

const random = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n));

/** Distinct random pair ids. */
function freshPairIds(count) {
  const ids = [];
  while (ids.length < count) {
    const pid = random(PAIR_ID_SIZE);
    if (!ids.some((p) => bytesEqual(p, pid))) ids.push(pid);
  }
  return ids;
}

/** Connection to one relay origin. */
export class Relay {
  /**
   * @param {string} origin e.g. `https://relay.example.com`
   * @param {{ numberOfPairs: number, maxPairs?: number, pins?: Uint8Array[] | null, onWire?: (info: object) => void }} options
   *   `pins`: the only relay key ids to trust; without, trust on first use (stored per origin);
   *   `onWire`: told of every `Retry-After` wait (`direction: 'retry-after'`)
   */
  constructor(origin, options) {
    this.origin = origin;
    this._onWire = options.onWire;
    /** Discoveries and pairings sent again after a 429 or 503 (once its `Retry-After` passed). */
    this.busyRetries = 0;
    this._numberOfPairs = options.numberOfPairs;
    this._maxPairsOption = options.maxPairs;
    this._pins = options.pins?.length ? options.pins : null;
    /** @type {string | null} */
    this.token = null;
    /** @type {Uint8Array | null} */
    this.id = null;
    /** @type {import('./_headers.js').RelayInfo | null} */
    this.info = null;
    /** @type {import('./_relay_key.js').RelayKey[]} the relay's keys from the last discovery */
    this.offered = [];
    /** @type {import('./_relay_key.js').RelayKey | null} the key of the last confirmed pairing */
    this.key = null;
    this._generation = 0;
    this._seq = 0; // pairing requests so far
    this._staleSeq = -1; // pairs of pairing requests up to this one are dropped when they come back (563)
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

  /** Fingerprint of the relay key the current pairs were made with (null before the first pairing). */
  get fingerprint() {
    return this.key?.fingerprint ?? null;
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
    if (pair.seq <= this._staleSeq) {
      this.drop(pair);
      return;
    }
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
   * Forgets a pair the relay no longer accepts and pairs its replacement for the caller: a request
   * sent again after 559/561–565 runs on the re-paired pair, never on another old pair of the pool
   * (after a relay restart every old pair is stale; PROTOCOL.md §12). Falls back to an ordinary
   * `acquire` when the pool was reset meanwhile.
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
      pairs = await this._pairWithRecovery(1);
    } finally {
      this._pairing--;
    }
    if (generation !== this._generation) return this.acquire();
    this._size++;
    return { ...pairs[0], generation };
  }

  /**
   * 563 (the relay has no state for this pair: expired, evicted, or the relay restarted): every
   * pair paired no later than it is stale too. Idle ones are dropped now and replaced by one
   * pairing request; busy ones when they come back.
   * @param {Pair} pair the pair that got 563 (the caller still holds it)
   */
  dropUpTo(pair) {
    if (pair.generation !== this._generation) return;
    this._staleSeq = Math.max(this._staleSeq, pair.seq);
    const stale = this._idle.filter((p) => p.seq <= this._staleSeq);
    if (stale.length === 0) return;
    this._idle = this._idle.filter((p) => p.seq > this._staleSeq);
    for (const p of stale) p.chainKey.fill(0);
    this._size -= stale.length;
    this._grow(stale.length);
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
    const count = Math.max(1, Math.min(this._numberOfPairs, this.maxPairs));
    const generation = this._generation;
    this._pairing += count;
    let pairs;
    try {
      pairs = await this._pairWithRecovery(count);
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
    this._pairWithRecovery(count).then(
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
   * `HEAD /api/mte-relay`: learns (or renews) the client token, the relay's parameters and keys.
   * @returns {Promise<void>}
   */
  async discover() {
    const stored = loadToken(this.origin);
    /** @type {Record<string, string>} */
    const headers = stored ? { 'x-mte-relay': formatDiscoveryHeader(stored) } : {};
    let res;
    for (let attempt = 1; ; attempt++) {
      try {
        res = await fetch(`${this.origin}/api/mte-relay`, { method: 'HEAD', headers });
      } catch (cause) {
        throw new MteRelayError(
          'cors_blocked',
          `could not reach the relay at ${this.origin}: the network failed, or this page's origin is not allowed by the relay's CORS_ORIGINS`,
          { cause },
        );
      }
      const wait = retryAfterMs(res.status, res.headers.get('retry-after'));
      if (wait === null || attempt >= PAIRING_ATTEMPTS) break;
      await res.body?.cancel();
      await this._backOff('discovery', res.status, attempt, wait);
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
    const info = parseRelayInfo(res.headers.get('x-mte-relay-info'));
    const keys = res.headers.get('x-mte-relay-keys');
    if (keys === null) throw new MteRelayError('relay_key_invalid', `${this.origin} offers no relay key (x-mte-relay-keys missing, or not exposed through CORS)`);
    this.offered = parseRelayKeys(keys);
    this.info = info;
    this.token = token;
    this.id = id;
    saveToken(this.origin, token);
  }

  /**
   * The relay key ids this client trusts for this origin: the pins, else those stored (empty at
   * first contact).
   * @returns {Uint8Array[]}
   */
  trustedKeys() {
    if (this._pins) return this._pins;
    const ids = [];
    for (const fp of loadTrustedKeys(this.origin)) {
      try {
        ids.push(parseFingerprint(fp));
      } catch {
        // a damaged entry is no trust
      }
    }
    return ids;
  }

  /**
   * Stores a token the relay returned, if it re-signed ours (same id).
   * @param {string} token
   * @param {Uint8Array} id
   * @returns {boolean} false when the id is not ours
   */
  acceptToken(token, id) {
    if (!this.id || !bytesEqual(id, this.id)) return false;
    if (token !== this.token) {
      this.token = token;
      saveToken(this.origin, token);
    }
    return true;
  }

  /**
   * Pairs, re-discovering once after 560/566 (client id) or `unknown_relay_key`. Hard errors
   * (`relay_key_not_trusted`, `pairing_not_confirmed`) are never retried with another key.
   * @param {number} count
   */
  async _pairWithRecovery(count) {
    try {
      return await this._pair(count);
    } catch (error) {
      if (!(error instanceof MteRelayError)) throw error;
      const unknownKey = error.reason === 'unknown_relay_key';
      if (!unknownKey && !CLIENT_ID_ERRORS.has(error.status ?? 0)) throw error;
      await this.discover();
      try {
        return await this._pair(count);
      } catch (again) {
        if (!(again instanceof MteRelayError) || again.reason !== 'unknown_relay_key') throw again;
        throw new MteRelayError(
          'pairing_not_confirmed',
          `${this.origin} offers relay key ${again.fingerprint} but refuses pairing with it (unknown_relay_key): not pairing`,
          { reason: 'unknown_relay_key', fingerprint: again.fingerprint, status: again.status },
        );
      }
    }
  }

  /**
   * `POST /api/mte-pair` for `count` fresh pairs with a trusted relay key (PROTOCOL.md §6, §13).
   * @param {number} count
   * @returns {Promise<Array<{ pid: Uint8Array, counter: bigint, chainKey: Uint8Array, seq: number }>>}
   */
  async _pair(count) {
    const relayKey = chooseRelayKey(this.offered, this.trustedKeys(), this.origin);
    for (let attempt = 1; ; attempt++) {
      const paired = await this._pairOnce(relayKey, count, attempt);
      if (paired) return paired;
    }
  }

  /**
   * Waits `waitMs` plus jitter after attempt `attempt` of a discovery or pairing was refused with
   * `status`, counting and reporting it.
   * @param {'discovery' | 'pairing'} request
   * @param {number} status
   * @param {number} attempt
   * @param {number} waitMs
   */
  async _backOff(request, status, attempt, waitMs) {
    const total = waitMs + Math.floor(Math.random() * (RETRY_JITTER_MS + 1));
    this.busyRetries++;
    this._onWire?.({ direction: 'retry-after', request, status, attempt, waitMs: total });
    await new Promise((resolve) => setTimeout(resolve, total));
  }

  /**
   * One `POST /api/mte-pair` attempt with `relayKey`: the new pairs, or null when the relay refused
   * it with 429/503 and attempt `attempt` may be followed by another (after the wait).
   * @param {import('./_relay_key.js').RelayKey} relayKey
   * @param {number} count
   * @param {number} attempt
   */
  async _pairOnce(relayKey, count, attempt) {
    const pairing = startPairing({
      id: this.id,
      relayKey,
      eseedR: random(ESEED_SIZE),
      seedE: random(SEED_SIZE),
      pairIds: freshPairIds(Math.min(count, this.info?.maxPairs ?? count, MAX_PAIRS_PER_REQUEST)),
    });
    let text;
    try {
      let res;
      try {
        res = await fetch(`${this.origin}/api/mte-pair`, {
          method: 'POST',
          headers: { 'x-mte-relay': formatDiscoveryHeader(this.token), 'content-type': 'application/json' },
          body: pairing.body,
        });
        text = await res.text();
      } catch (cause) {
        throw new MteRelayError('pairing_failed', `pairing with ${this.origin} failed: ${cause?.message ?? cause}`, { cause });
      }
      if (!res.ok) {
        const wait = retryAfterMs(res.status, res.headers.get('retry-after'));
        if (wait !== null && attempt < PAIRING_ATTEMPTS) {
          pairing.discard();
          await this._backOff('pairing', res.status, attempt, wait);
          return null;
        }
        const code = res.headers.get('x-mte-relay-error') ?? '';
        throw new MteRelayError('pairing_failed', `pairing with ${this.origin} answered ${res.status} ${code}: ${text.slice(0, 300)}`, {
          status: res.status,
          reason: code === 'unknown_relay_key' ? code : undefined,
          fingerprint: relayKey.fingerprint,
        });
      }
      const header = res.headers.get('x-mte-relay');
      const renewed = header ? parseRelayHeaderAs(header, 'discovery') : null;
      if (renewed && !this.acceptToken(renewed.token, renewed.id)) {
        throw new MteRelayError('pairing_not_confirmed', `pairing with ${this.origin} was answered for another client id`, { reason: 'mismatch', fingerprint: relayKey.fingerprint });
      }
    } catch (error) {
      pairing.discard();
      throw error;
    }
    const { pairs, keys } = pairing.complete(text); // throws pairing_not_confirmed
    this.key = relayKey;
    if (!this._pins) this._trust(keys);
    const seq = ++this._seq;
    return pairs.map((p) => ({ pid: p.pid, counter: 0n, chainKey: p.chainKey, seq }));
  }

  /** Trust on first use: after a confirmed pairing, trust every key the relay listed (§13). */
  _trust(keyIds) {
    const stored = loadTrustedKeys(this.origin);
    const fresh = keyIds.map(formatFingerprint);
    const merged = [...fresh, ...stored.filter((fp) => !fresh.includes(fp))].slice(0, MAX_STORED_KEYS);
    if (merged.join() !== stored.join()) saveTrustedKeys(this.origin, merged);
  }
}
