/**
 * Wire header formats (PROTOCOL.md §4, §8.1, §8.2): `x-mte-relay` in its discovery and exchange
 * forms, `x-mte-relay-info`, and the sealed header block (JSON array of `[name, value]` pairs).
 * Parsers throw `MteRelayError('invalid_header')` on anything malformed.
 * @module
 */
import { b64decode, b64encode, U64_MAX } from './_bytes.js';
import { MteRelayError } from './_errors.js';

/** The only protocol version this client speaks. */
export const VERSION = '1';
/** Flag bits of `x-mte-relay`. */
export const FLAG_URL = 0x01;
export const FLAG_HEADERS = 0x02;
export const FLAG_BODY = 0x04;
export const FLAG_STREAMING = 0x08;
const KNOWN_FLAGS = FLAG_URL | FLAG_HEADERS | FLAG_BODY | FLAG_STREAMING;

/** Raw client id length inside a token. */
export const ID_SIZE = 16;
/** Token = b64(id(16) || mac(32)). */
const TOKEN_BYTES = 48;

const invalid = (what) => new MteRelayError('invalid_header', `malformed ${what}`);

/**
 * Parses a decimal header number: ASCII digits, no sign, no leading zeros (except `0`), ≤ 20 digits.
 * @param {string} text
 * @param {bigint} max largest accepted value
 * @returns {bigint}
 */
function parseDecimal(text, max) {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw invalid('number');
  const value = BigInt(text);
  if (value > max) throw invalid('number');
  return value;
}

/**
 * Extracts the raw client id from a token (`b64decode(token)[0..16]`), checking the token's shape.
 * @param {string} token
 * @returns {Uint8Array} 16 bytes
 */
export function tokenId(token) {
  let raw;
  try {
    raw = b64decode(token);
  } catch {
    throw invalid('client token');
  }
  if (raw.length !== TOKEN_BYTES) throw invalid('client token');
  return raw.slice(0, ID_SIZE);
}

/**
 * Discovery / pairing form: `1.<token>`.
 * @param {string} token
 * @returns {string}
 */
export const formatDiscoveryHeader = (token) => `${VERSION}.${token}`;

/**
 * Exchange form: `1.<token>.<b64(pid)>.<counter>.<flags>`.
 * @param {{ token: string, pid: Uint8Array, counter: bigint, flags: number }} h
 * @returns {string}
 */
export function formatExchangeHeader(h) {
  return `${VERSION}.${h.token}.${b64encode(h.pid)}.${h.counter}.${h.flags}`;
}

/**
 * A parsed `x-mte-relay` value. `pid`, `counter` and `flags` are present in the exchange form only.
 * @typedef {object} RelayHeader
 * @property {'discovery' | 'exchange'} form
 * @property {string} token client token
 * @property {Uint8Array} id raw client id (from the token)
 * @property {Uint8Array} [pid] pair id, 16 bytes
 * @property {bigint} [counter] exchange counter
 * @property {number} [flags] flag bits (always with FLAG_HEADERS, no unknown bits)
 */

/**
 * Parses `x-mte-relay` in either form: `1.<token>` (discovery, pairing) or
 * `1.<token>.<pid>.<counter>.<flags>` (exchanges).
 * @param {string} value
 * @returns {RelayHeader}
 * @throws {MteRelayError} `version_unsupported` for a well-formed other version, else `invalid_header`
 */
export function parseRelayHeader(value) {
  const fields = value.split('.');
  if (fields.length < 2) throw invalid('x-mte-relay');
  if (parseDecimal(fields[0], U64_MAX) !== BigInt(VERSION)) {
    throw new MteRelayError('version_unsupported', `x-mte-relay version ${fields[0]} is not supported`);
  }
  if (fields.length === 2) return { form: 'discovery', token: fields[1], id: tokenId(fields[1]) };
  if (fields.length !== 5) throw invalid('x-mte-relay');
  const [, token, pidText, counterText, flagsText] = fields;
  const id = tokenId(token);
  let pid;
  try {
    pid = b64decode(pidText);
  } catch {
    throw invalid('pair id');
  }
  if (pid.length !== ID_SIZE) throw invalid('pair id');
  const counter = parseDecimal(counterText, U64_MAX);
  const flags = Number(parseDecimal(flagsText, 255n));
  if (flags & ~KNOWN_FLAGS || !(flags & FLAG_HEADERS)) throw invalid('flags');
  return { form: 'exchange', token, id, pid, counter, flags };
}

/**
 * Parses `x-mte-relay`, requiring the given form.
 * @param {string} value
 * @param {'discovery' | 'exchange'} form
 * @returns {RelayHeader}
 */
export function parseRelayHeaderAs(value, form) {
  const parsed = parseRelayHeader(value);
  if (parsed.form !== form) throw invalid(`x-mte-relay (expected the ${form} form)`);
  return parsed;
}

/**
 * @typedef {object} RelayInfo
 * @property {number[]} versions offered protocol versions
 * @property {number} maxPairs most pairs in one pairing request
 * @property {number} chunkSize body chunk size
 * @property {number} maxSkip forward window of counters
 */

/**
 * Parses `x-mte-relay-info` (`;`-separated `key=value`, unknown keys ignored).
 * @param {string} value
 * @returns {RelayInfo}
 */
export function parseRelayInfo(value) {
  /** @type {Map<string, string>} */
  const entries = new Map();
  for (const item of value.split(';')) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid('x-mte-relay-info');
    entries.set(item.slice(0, eq).trim(), item.slice(eq + 1).trim());
  }
  const number = (key) => {
    const text = entries.get(key);
    if (text === undefined) throw invalid(`x-mte-relay-info (missing ${key})`);
    return Number(parseDecimal(text, BigInt(Number.MAX_SAFE_INTEGER)));
  };
  const versions = entries.get('versions');
  if (versions === undefined) throw invalid('x-mte-relay-info (missing versions)');
  return {
    versions: versions.split(',').map((v) => Number(parseDecimal(v.trim(), 255n))),
    maxPairs: number('max-pairs'),
    chunkSize: number('chunk-size'),
    maxSkip: number('max-skip'),
  };
}

/** Request header names the relay refuses among sealed headers (§8.2), besides `x-mte-*`. */
const FORBIDDEN_REQUEST_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']);
/** A lowercase RFC 9110 token. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Field value: no control characters except HTAB, no DEL. */
const BAD_VALUE_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * Whether a header name may not be sealed into a request (the relay answers 400 forbidden_header).
 * @param {string} name lowercase
 * @returns {boolean}
 */
export const isForbiddenRequestHeader = (name) => FORBIDDEN_REQUEST_HEADERS.has(name) || name.startsWith('x-mte-');

/**
 * Serialises a header list as the sealed header block plaintext (compact JSON).
 * @param {Array<[string, string]>} headers lowercase names
 * @returns {string}
 */
export const encodeHeaderBlock = (headers) => JSON.stringify(headers);

/**
 * Parses a sealed header block: a JSON array of `[name, value]` string pairs.
 * @param {string} json
 * @returns {Array<[string, string]>}
 * @throws {MteRelayError} `decode_failed` when the shape is wrong
 */
export function decodeHeaderBlock(json) {
  const wrong = () => new MteRelayError('decode_failed', 'sealed header block is not a JSON array of [name, value] strings');
  let parsed;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw wrong();
  }
  if (!Array.isArray(parsed)) throw wrong();
  for (const entry of parsed) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') throw wrong();
  }
  return parsed;
}

/**
 * Checks a decoded header list: lowercase token names, values without control characters, and for
 * requests none of the names the relay refuses.
 * @param {Array<[string, string]>} headers
 * @param {boolean} isRequest
 * @throws {MteRelayError} `forbidden_header`
 */
export function checkHeaderList(headers, isRequest) {
  for (const [name, value] of headers) {
    if (!HEADER_NAME.test(name) || BAD_VALUE_CHAR.test(value) || (isRequest && isForbiddenRequestHeader(name))) {
      throw new MteRelayError('forbidden_header', `header ${JSON.stringify(name)} is not allowed in a sealed header block`);
    }
  }
}
