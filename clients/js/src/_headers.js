/**
 * Wire header formats (PROTOCOL.md §5, §9.1, §9.2): `x-mte-relay` in its discovery and exchange
 * forms, `x-mte-relay-info`, and the sealed header block (JSON array of `[name, value]` pairs).
 * Parsers throw `MteRelayError` with the code of the rule broken (`invalid_header` by default).
 * @module
 */
import { b64decode, b64encode, U64_MAX } from './_bytes.js';
import { MteRelayError } from './_errors.js';

/** The only protocol version this client speaks. */
export const VERSION = '2';
/** Flag bits of `x-mte-relay`. */
export const FLAG_URL = 0x01;
export const FLAG_HEADERS = 0x02;
export const FLAG_BODY = 0x04;
export const FLAG_STREAMING = 0x08;
/** Requests only: this request repeats the one sent with counter `n - 1` on this pair (§12). */
export const FLAG_RETRY = 0x10;
const KNOWN_FLAGS = FLAG_URL | FLAG_HEADERS | FLAG_BODY | FLAG_STREAMING | FLAG_RETRY;

/** Raw client id length inside a token. */
export const ID_SIZE = 16;
/** Token = b64(id(16) || mac(32)), 64 characters. */
const TOKEN_BYTES = 48;
/** The fixed body chunk size and counter window of version 2 (§5). */
const CHUNK_SIZE_V2 = 65536;
const MAX_SKIP_V2 = 16;
/** Bounds of `max-pairs` a client accepts in `x-mte-relay-info`. */
const MAX_PAIRS_RANGE = [1, 255];

const invalid = (what) => new MteRelayError('invalid_header', `malformed ${what}`);

/**
 * Parses a decimal header number: ASCII digits, no sign, no leading zeros (except `0`), ≤ 20 digits.
 * @param {string} text
 * @param {bigint} max largest accepted value
 * @param {(what: string) => MteRelayError} [fail]
 * @returns {bigint}
 */
function parseDecimal(text, max, fail = invalid) {
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw fail('number');
  const value = BigInt(text);
  if (value > max) throw fail('number');
  return value;
}

/**
 * Extracts the raw client id from a token (`b64decode(token)[0..16]`), checking the token's shape.
 * @param {string} token
 * @returns {Uint8Array} 16 bytes
 * @throws {MteRelayError} `invalid_header` (reason `invalid_client_id`)
 */
export function tokenId(token) {
  let raw;
  try {
    raw = b64decode(token);
  } catch {
    raw = null;
  }
  if (raw === null || raw.length !== TOKEN_BYTES) throw new MteRelayError('invalid_header', 'the client token is not 64 characters of strict base64url', { reason: 'invalid_client_id' });
  return raw.slice(0, ID_SIZE);
}

/**
 * Discovery / pairing form: `2.<token>`.
 * @param {string} token
 * @returns {string}
 */
export const formatDiscoveryHeader = (token) => `${VERSION}.${token}`;

/**
 * Exchange form: `2.<token>.<b64(pid)>.<counter>.<flags>`.
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
 * Parses `x-mte-relay` in either form: `2.<token>` (discovery, pairing) or
 * `2.<token>.<pid>.<counter>.<flags>` (exchanges), in the order of checks of §9.1.
 * @param {string} value
 * @param {{ response?: boolean }} [options] `response`: a relay's answer (flag `retry` refused)
 * @returns {RelayHeader}
 * @throws {MteRelayError} `version_unsupported` for a well-formed other version, else `invalid_header`
 *   (reason `client_id_missing` without a token, `invalid_client_id` for a malformed one)
 */
export function parseRelayHeader(value, options = {}) {
  const fields = value.split('.');
  if (parseDecimal(fields[0], U64_MAX) !== BigInt(VERSION)) {
    throw new MteRelayError('version_unsupported', `x-mte-relay version ${fields[0]} is not supported (this client speaks version ${VERSION})`);
  }
  if (fields.length === 1 || fields[1] === '') throw new MteRelayError('invalid_header', 'x-mte-relay carries no client token', { reason: 'client_id_missing' });
  if (fields.length !== 2 && fields.length !== 5) throw invalid('x-mte-relay (wrong number of fields)');
  const token = fields[1];
  const id = tokenId(token);
  if (fields.length === 2) return { form: 'discovery', token, id };
  const [, , pidText, counterText, flagsText] = fields;
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
  if (options.response && flags & FLAG_RETRY) throw invalid('flags (retry on a response)');
  return { form: 'exchange', token, id, pid, counter, flags };
}

/**
 * Parses a relay's `x-mte-relay`, requiring the given form.
 * @param {string} value
 * @param {'discovery' | 'exchange'} form
 * @returns {RelayHeader}
 */
export function parseRelayHeaderAs(value, form) {
  const parsed = parseRelayHeader(value, { response: true });
  if (parsed.form !== form) throw invalid(`x-mte-relay (expected the ${form} form)`);
  return parsed;
}

/**
 * @typedef {object} RelayInfo
 * @property {number[]} versions offered protocol versions
 * @property {number} maxPairs most pairs in one pairing request
 */

/**
 * Parses `x-mte-relay-info` (`;`-separated `key=value`, unknown keys ignored; `versions`,
 * `max-pairs`, `chunk-size` and `max-skip` required, each once) and checks that the relay speaks
 * version 2 with its fixed chunk size and counter window.
 * @param {string | null} value
 * @returns {RelayInfo}
 * @throws {MteRelayError} `relay_info_invalid`, or `version_unsupported` for a relay without version 2
 */
export function parseRelayInfo(value) {
  const malformed = (what) => new MteRelayError('relay_info_invalid', `x-mte-relay-info is malformed: ${what}`);
  const unsupported = (what) => new MteRelayError('version_unsupported', `the relay does not speak protocol version ${VERSION}: ${what}`);
  if (value === null) throw malformed('missing (or not exposed through CORS)');
  /** @type {Map<string, string>} */
  const entries = new Map();
  for (const item of value.split(';')) {
    const eq = item.indexOf('=');
    if (eq < 0) throw malformed(`item ${JSON.stringify(item.trim())} is not key=value`);
    const key = item.slice(0, eq).trim();
    if (entries.has(key)) throw malformed(`${key} given twice`);
    entries.set(key, item.slice(eq + 1).trim());
  }
  const required = (key) => {
    const text = entries.get(key);
    if (text === undefined) throw malformed(`${key} missing`);
    return text;
  };
  const number = (key) => Number(parseDecimal(required(key), BigInt(Number.MAX_SAFE_INTEGER), () => malformed(`${key} is not a number`)));
  const versions = required('versions')
    .split(',')
    .map((v) => Number(parseDecimal(v.trim(), 255n, () => malformed('versions is not a list of numbers'))));
  const maxPairs = number('max-pairs');
  const chunkSize = number('chunk-size');
  const maxSkip = number('max-skip');
  if (maxPairs < MAX_PAIRS_RANGE[0] || maxPairs > MAX_PAIRS_RANGE[1]) throw malformed(`max-pairs ${maxPairs} is outside ${MAX_PAIRS_RANGE.join('..')}`);
  if (!versions.includes(Number(VERSION))) throw unsupported(`it offers versions ${versions.join(',')}`);
  if (chunkSize !== CHUNK_SIZE_V2 || maxSkip !== MAX_SKIP_V2) throw unsupported(`chunk-size ${chunkSize} and max-skip ${maxSkip} (version 2 fixes ${CHUNK_SIZE_V2} and ${MAX_SKIP_V2})`);
  return { versions, maxPairs };
}

/** Request header names the relay refuses among sealed headers (§9.2), besides `x-mte-*` and `x-forwarded-*`. */
const FORBIDDEN_REQUEST_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect', 'forwarded', 'x-real-ip']);
/** A lowercase RFC 9110 token. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;
/** Field value: no control characters except HTAB, no DEL. */
const BAD_VALUE_CHAR = /[\u0000-\u0008\u000a-\u001f\u007f]/;

/**
 * Whether a header name may not be sealed into a request (the relay answers 400 forbidden_header).
 * @param {string} name lowercase
 * @returns {boolean}
 */
export const isForbiddenRequestHeader = (name) => FORBIDDEN_REQUEST_HEADERS.has(name) || name.startsWith('x-mte-') || name.startsWith('x-forwarded-');

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
