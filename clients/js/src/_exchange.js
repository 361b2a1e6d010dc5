/**
 * One exchange's sealed items (PROTOCOL.md §7–§10): the URL, the header block and the body records,
 * in either direction. Pure apart from WebCrypto; both sides of the protocol are expressed so that
 * test vectors can be checked whichever side produced them.
 * @module
 */
import { b64decode, b64encode, fromUtf8, utf8 } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { checkHeaderList, decodeHeaderBlock, encodeHeaderBlock, FLAG_URL } from './_headers.js';
import { ratchet } from './_schedule.js';
import { aad, checkMethod, DIR_REQUEST, importKey, nonce, open, PART_BODY, PART_HEADERS, PART_URL, seal } from './_seal.js';
import { StreamOpener, StreamSealer } from './_stream.js';

/** Largest `x-mte-relay-eh` value (characters) either side accepts (§9.2, §15). */
export const MAX_SEALED_HEADERS = 16384;

/**
 * Everything bound into one exchange's keys and AADs.
 * @typedef {object} ExchangeContext
 * @property {Uint8Array} id client id
 * @property {Uint8Array} pid pair id
 * @property {bigint} counter exchange counter n
 * @property {string} method request method as sent
 * @property {CryptoKey} requestKey kq_n
 * @property {CryptoKey} responseKey ks_n
 * @property {Uint8Array} errorKey ke_n, the key of the relay's error tags (§11.2)
 */

/**
 * Derives the exchange keys from `ck_n` and erases `ck_n`.
 * @param {{ id: Uint8Array, pid: Uint8Array, counter: bigint, chainKey: Uint8Array, method: string }} p
 * @returns {Promise<{ context: ExchangeContext, nextChainKey: Uint8Array }>}
 */
export async function startExchange(p) {
  checkMethod(p.method); // before ck_n is spent
  const { requestKey, responseKey, errorKey, nextChainKey } = ratchet(p.chainKey);
  p.chainKey.fill(0);
  const context = {
    id: p.id,
    pid: p.pid,
    counter: p.counter,
    method: p.method,
    requestKey: await importKey(requestKey),
    responseKey: await importKey(responseKey),
    errorKey,
  };
  requestKey.fill(0);
  responseKey.fill(0);
  return { context, nextChainKey };
}

/**
 * Where a sealed item sits.
 * @typedef {object} ItemPosition
 * @property {number} dir DIR_REQUEST or DIR_RESPONSE
 * @property {number} flags the message's flags
 * @property {number} status response status, 0 for requests
 */

const keyFor = (ctx, dir) => (dir === DIR_REQUEST ? ctx.requestKey : ctx.responseKey);

/**
 * The AAD of one sealed item of this exchange. The request-target is bound only into the request
 * headers item of a request whose URL is not sealed (§8); everywhere else it is empty.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {number} part PART_URL, PART_HEADERS or PART_BODY
 * @param {number} index body record index (0 otherwise)
 * @param {boolean} final last body record (true otherwise)
 * @param {string} target the request-target as sent (ignored unless bound)
 * @returns {Uint8Array}
 */
export function itemAad(ctx, pos, part, index, final, target) {
  const bound = pos.dir === DIR_REQUEST && part === PART_HEADERS && !(pos.flags & FLAG_URL) ? target : '';
  return aad({ ...pos, part, id: ctx.id, pid: ctx.pid, counter: ctx.counter, index, final, method: ctx.method, target: bound });
}

/**
 * Seals a URL (origin-form path and query) into a request-target `"/" || b64(...)`.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {string} pathAndQuery
 * @returns {Promise<string>}
 */
export async function sealUrl(ctx, pos, pathAndQuery) {
  const sealed = await seal(keyFor(ctx, pos.dir), nonce(PART_URL, true, 0), utf8(pathAndQuery), itemAad(ctx, pos, PART_URL, 0, true, ''));
  return `/${b64encode(sealed)}`;
}

/**
 * Opens a sealed request-target back into the path and query.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {string} target `"/" || b64(...)`
 * @returns {Promise<string>}
 */
export async function openUrl(ctx, pos, target) {
  if (!target.startsWith('/')) throw new MteRelayError('decode_failed', 'a sealed URL must start with "/"');
  const sealed = decodeB64Item(target.slice(1));
  const plain = await open(keyFor(ctx, pos.dir), nonce(PART_URL, true, 0), sealed, itemAad(ctx, pos, PART_URL, 0, true, ''));
  return decodeUtf8Item(plain);
}

/**
 * Seals a header block into the `x-mte-relay-eh` value.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {Array<[string, string]>} headers
 * @param {string} target the request-target as sent (bound only for requests without flag url)
 * @returns {Promise<string>}
 */
export async function sealHeaders(ctx, pos, headers, target) {
  const plain = utf8(encodeHeaderBlock(headers));
  const value = b64encode(await seal(keyFor(ctx, pos.dir), nonce(PART_HEADERS, true, 0), plain, itemAad(ctx, pos, PART_HEADERS, 0, true, target)));
  if (value.length > MAX_SEALED_HEADERS) throw tooLarge();
  return value;
}

/**
 * Opens an `x-mte-relay-eh` value into its header list and checks the names and values.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {string} value
 * @param {string} target the request-target as received (bound only for requests without flag url)
 * @returns {Promise<Array<[string, string]>>}
 */
export async function openHeaders(ctx, pos, value, target) {
  if (value.length > MAX_SEALED_HEADERS) throw tooLarge();
  const sealed = decodeB64Item(value);
  const plain = await open(keyFor(ctx, pos.dir), nonce(PART_HEADERS, true, 0), sealed, itemAad(ctx, pos, PART_HEADERS, 0, true, target));
  const headers = decodeHeaderBlock(decodeUtf8Item(plain));
  checkHeaderList(headers, pos.dir === DIR_REQUEST);
  return headers;
}

/**
 * A body encoder for this message.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @returns {StreamSealer}
 */
export function bodySealer(ctx, pos) {
  return new StreamSealer(keyFor(ctx, pos.dir), (index, final) => itemAad(ctx, pos, PART_BODY, index, final, ''));
}

/**
 * A body decoder for this message.
 * @param {ExchangeContext} ctx
 * @param {ItemPosition} pos
 * @param {{ expectedLength?: number | null, sized?: boolean }} [options] sized-mode checks
 * @returns {StreamOpener}
 */
export function bodyOpener(ctx, pos, options) {
  return new StreamOpener(keyFor(ctx, pos.dir), (index, final) => itemAad(ctx, pos, PART_BODY, index, final, ''), options);
}

function tooLarge() {
  return new MteRelayError('headers_too_large', `sealed header block over ${MAX_SEALED_HEADERS} characters`);
}

function decodeB64Item(text) {
  try {
    return b64decode(text);
  } catch (cause) {
    throw new MteRelayError('decode_failed', 'a sealed item is not valid base64url', { cause });
  }
}

function decodeUtf8Item(bytes) {
  try {
    return fromUtf8(bytes);
  } catch (cause) {
    throw new MteRelayError('decode_failed', 'a sealed item is not valid UTF-8', { cause });
  }
}
