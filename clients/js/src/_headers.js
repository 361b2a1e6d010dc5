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
export function parseDecimal(text, max) {
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
 * Parses the discovery / pairing form `1.<token>`.
 * @param {string} value
 * @returns {{ token: string, id: Uint8Array }}
 */
export function parseDiscoveryHeader(value) {
  const fields = value.split('.');
  if (fields.length !== 2 || fields[0] !== VERSION) throw invalid('x-mte-relay');
  return { token: fields[1], id: tokenId(fields[1]) };
}

/**
 * @typedef {object} ExchangeHeader
 * @property {string} token client token
 * @property {Uint8Array} id raw client id (from the token)
 * @property {Uint8Array} pid pair id, 16 bytes
 * @property {bigint} counter exchange counter
 * @property {number} flags flag bits
 */

/**
 * Exchange form: `1.<token>.<b64(pid)>.<counter>.<flags>`.
 * @param {{ token: string, pid: Uint8Array, counter: bigint, flags: number }} h
 * @returns {string}
 */
export function formatExchangeHeader(h) {
  return `${VERSION}.${h.token}.${b64encode(h.pid)}.${h.counter}.${h.flags}`;
}

/**
 * Parses the exchange form; unknown flag bits are an error.
 * @param {string} value
 * @returns {ExchangeHeader}
 */
export function parseExchangeHeader(value) {
  const fields = value.split('.');
  if (fields.length !== 5 || fields[0] !== VERSION) throw invalid('x-mte-relay');
  const [, token, pidText, counterText, flagsText] = fields;
  let pid;
  try {
    pid = b64decode(pidText);
  } catch {
    throw invalid('pair id');
  }
  if (pid.length !== ID_SIZE) throw invalid('pair id');
  const counter = parseDecimal(counterText, U64_MAX);
  const flags = Number(parseDecimal(flagsText, 255n));
  if (flags & ~KNOWN_FLAGS) throw invalid('flags');
  return { token, id: tokenId(token), pid, counter, flags };
}

/**
 * @typedef {object} RelayInfo
 * @property {string[]} versions offered protocol versions
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
    versions: versions.split(',').map((v) => v.trim()),
    maxPairs: number('max-pairs'),
    chunkSize: number('chunk-size'),
    maxSkip: number('max-skip'),
  };
}

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
 */
export function decodeHeaderBlock(json) {
  let parsed;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw invalid('header block');
  }
  if (!Array.isArray(parsed)) throw invalid('header block');
  for (const entry of parsed) {
    if (!Array.isArray(entry) || entry.length !== 2 || typeof entry[0] !== 'string' || typeof entry[1] !== 'string') {
      throw invalid('header block');
    }
  }
  return parsed;
}
