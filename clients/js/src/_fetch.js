/**
 * One `mteFetch` call: normalise the caller's request, run the exchange on a pair (seal URL,
 * headers and body; decode the response as a stream), and recover from relay errors 559–569 by
 * re-pairing / re-discovering and retrying once when the body can be replayed.
 * @module
 */
import { blobSource, bytesSource, recordPlaintexts, streamSource, toBytes } from './_body.js';
import { bytesEqual } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { bodyOpener, bodySealer, openHeaders, sealHeaders, sealUrl, startExchange } from './_exchange.js';
import { FLAG_BODY, FLAG_HEADERS, FLAG_STREAMING, FLAG_URL, formatExchangeHeader, isForbiddenRequestHeader, parseRelayHeaderAs } from './_headers.js';
import { DIR_REQUEST, DIR_RESPONSE } from './_seal.js';
import { plainLength } from './_stream.js';
import { NODE_FETCH, NULL_BODY_STATUSES, send } from './_transport.js';

/** fetch options passed through to the wire request (its mode is always fetch's default, cors). */
const PASSED_INIT = ['credentials', 'cache', 'redirect', 'referrer', 'referrerPolicy', 'keepalive', 'signal'];

/**
 * Per-call settings after merging defaults and `mteOptions`.
 * @typedef {object} CallSettings
 * @property {boolean} encodeUrls
 * @property {boolean | string[]} encodeHeaders
 * @property {((p: { loaded: number, total: number | null }) => void) | undefined} onUploadProgress
 * @property {((info: object) => void) | undefined} onWire
 */

/**
 * The caller's request in protocol terms.
 * @typedef {object} PreparedRequest
 * @property {URL} url
 * @property {string} method
 * @property {Array<[string, string]>} headers lowercase names, as the fetch Headers class normalised them
 * @property {import('./_body.js').BodySource | null} body
 * @property {RequestInit} init fetch options passed through
 */

/**
 * Normalises fetch arguments with the platform's own `Request` (method case, header names, the
 * content-type implied by string / URLSearchParams / FormData / Blob bodies, multipart encoding).
 * @param {RequestInfo | URL} input
 * @param {RequestInit} [init]
 * @returns {Promise<PreparedRequest>}
 */
export async function prepareRequest(input, init = {}) {
  const rawBody = init.body;
  const isStream = typeof ReadableStream !== 'undefined' && rawBody instanceof ReadableStream;
  const request = new Request(input, isStream ? { ...init, body: null } : init);
  const headers = [...request.headers];
  /** @type {RequestInit} */
  const passed = {};
  for (const key of PASSED_INIT) {
    const value = init[key] ?? (input instanceof Request ? input[key] : undefined);
    if (value !== undefined) passed[key] = value;
  }
  let body = null;
  if (isStream) body = NODE_FETCH ? streamSource(rawBody) : blobSource(await new Response(rawBody).blob());
  else if (rawBody instanceof Blob) body = blobSource(rawBody);
  else if (rawBody instanceof ArrayBuffer || ArrayBuffer.isView(rawBody)) body = bytesSource(toBytes(rawBody).slice());
  else if (request.body !== null) body = bytesSource(new Uint8Array(await request.arrayBuffer()));
  return { url: new URL(request.url), method: request.method, headers, body, init: passed };
}

/**
 * Splits the caller's headers into sealed and plain ones. `content-type` is always sealed.
 * @param {Array<[string, string]>} headers
 * @param {boolean | string[]} encodeHeaders
 * @returns {{ sealed: Array<[string, string]>, plain: Array<[string, string]> }}
 */
export function splitHeaders(headers, encodeHeaders) {
  const listed = Array.isArray(encodeHeaders) ? new Set(encodeHeaders.map((n) => n.toLowerCase())) : null;
  const sealed = [];
  const plain = [];
  for (const [name, value] of headers) {
    if (isForbiddenRequestHeader(name)) continue; // fetch manages these; the relay refuses them sealed
    const seal = name === 'content-type' || encodeHeaders === true || (listed !== null && listed.has(name));
    (seal ? sealed : plain).push([name, value]);
  }
  return { sealed, plain };
}

/**
 * Runs `prepared` through `relay`, recovering from relay errors as PROTOCOL.md §11 says.
 * @param {import('./_relay.js').Relay} relay
 * @param {PreparedRequest} prepared
 * @param {CallSettings} settings
 * @returns {Promise<Response>}
 */
export async function relayFetch(relay, prepared, settings) {
  let pair = await relay.acquire();
  for (let attempt = 0; ; attempt++) {
    const outcome = await runExchange(relay, pair, prepared, settings);
    if (outcome.response) return outcome.response;
    const { status, code, message } = outcome;
    let retry = attempt === 0 && (prepared.body === null || prepared.body.replayable);
    /** @type {Promise<import('./_relay.js').Pair> | null} */
    let next = null;
    if (status === 567) relay.release(pair);
    else if (status === 560 || status === 566) relay.reset(pair, { rediscover: true }).catch(() => {});
    else if (status === 568) {
      await relay.reset(pair, { rediscover: true });
      retry = false;
    } else if (status === 569) relay.reset(pair, { rediscover: false }).catch(() => {});
    else if (retry) next = relay.renew(pair); // the retry runs on the re-paired pair (§11)
    else relay.drop(pair);
    if (!retry) throw new MteRelayError('relay_error', `the relay answered ${status} ${code}: ${message}`, { status });
    pair = await (next ?? relay.acquire());
  }
}

/**
 * One exchange on one pair. Resolves with the decoded response, or with the relay's error
 * (559–569) for the caller to recover from (the pair is then not released: the caller decides
 * between releasing, dropping and resetting). Otherwise the pair is released when the response
 * body ends, fails or is cancelled, or at once when there is no body.
 * @param {import('./_relay.js').Relay} relay
 * @param {import('./_relay.js').Pair} pair
 * @param {PreparedRequest} prepared
 * @param {CallSettings} settings
 * @returns {Promise<{ response: Response } | { response?: undefined, status: number, code: string, message: string }>}
 */
async function runExchange(relay, pair, prepared, settings) {
  const done = once(() => relay.release(pair));
  let res;
  try {
    res = await sendExchange(relay, pair, prepared, settings);
  } catch (error) {
    done();
    throw error;
  }
  return decodeResponse(relay, pair, res.context, res.response, prepared.url, settings.onWire, done);
}

async function sendExchange(relay, pair, prepared, settings) {
  const { url, method, body } = prepared;
  const counter = pair.counter;
  const { context, nextChainKey } = await startExchange({ id: relay.id, pid: pair.pid, counter, chainKey: pair.chainKey, method });
  pair.counter = counter + 1n;
  pair.chainKey = nextChainKey; // ck_n is erased before anything is sent

  const flags = FLAG_HEADERS | (settings.encodeUrls ? FLAG_URL : 0) | (body ? FLAG_BODY : 0) | (body && body.size === null ? FLAG_STREAMING : 0);
  const pos = { dir: DIR_REQUEST, flags, status: 0 };
  const pathAndQuery = url.pathname + url.search;
  const target = settings.encodeUrls ? await sealUrl(context, pos, pathAndQuery) : pathAndQuery;
  const { sealed, plain } = splitHeaders(prepared.headers, settings.encodeHeaders);
  const headers = new Headers(plain);
  headers.set('x-mte-relay', formatExchangeHeader({ token: relay.token, pid: pair.pid, counter, flags }));
  headers.set('x-mte-relay-eh', await sealHeaders(context, pos, sealed, target));
  if (body) headers.set('content-type', 'application/octet-stream');

  const wireUrl = relay.origin + target;
  const report = settings.onWire;
  const records = body ? sealRecords(bodySealer(context, pos), body, (first) => report?.({ direction: 'request', method, url: wireUrl, headers: Object.fromEntries(headers), bodyStart: first })) : null;
  if (!body) report?.({ direction: 'request', method, url: wireUrl, headers: Object.fromEntries(headers), bodyStart: null });

  const response = await send({ url: wireUrl, method, headers, records, plainSize: body ? body.size : null, init: prepared.init, onUploadProgress: settings.onUploadProgress });
  return { context, response };
}

async function* sealRecords(sealer, body, onFirst) {
  let first = true;
  for await (const { chunk, final } of recordPlaintexts(body)) {
    const record = await sealer.seal(chunk, final);
    if (first) onFirst(record.subarray(0, 64));
    first = false;
    yield record;
  }
}

async function decodeResponse(relay, pair, context, res, url, report, done) {
  const value = res.headers.get('x-mte-relay');
  if (!value) {
    if (res.status >= 559 && res.status <= 569) {
      const details = await res.json().catch(() => ({}));
      return { status: res.status, code: res.headers.get('x-mte-relay-error') ?? details.error ?? 'unknown', message: details.message ?? '' };
    }
    done();
    if (res.status >= 400) return { response: res }; // the relay's own (plain) errors, or a proxy's
    await res.body?.cancel();
    throw new MteRelayError('unsealed_response', `the relay answered ${res.status} without x-mte-relay; refusing an unauthenticated response`, { status: res.status });
  }
  try {
    const h = parseRelayHeaderAs(value, 'exchange');
    if (!bytesEqual(h.pid, pair.pid) || h.counter !== context.counter || !relay.acceptToken(h.token, h.id)) {
      throw new MteRelayError('invalid_header', 'response x-mte-relay does not match the request');
    }
    const eh = res.headers.get('x-mte-relay-eh');
    if (eh === null) throw new MteRelayError('invalid_header', 'response without x-mte-relay-eh');
    const pos = { dir: DIR_RESPONSE, flags: h.flags, status: res.status };
    const decodedHeaders = new Headers();
    for (const [name, v] of await openHeaders(context, pos, eh, '')) decodedHeaders.append(name, v);
    report?.({ direction: 'response', status: res.status, headers: Object.fromEntries(res.headers) });
    let stream = null;
    if (h.flags & FLAG_BODY && res.body && !NULL_BODY_STATUSES.has(res.status)) {
      const streaming = (h.flags & FLAG_STREAMING) !== 0;
      const contentLength = res.headers.get('content-length');
      let expectedLength = null;
      if (!streaming && contentLength !== null) {
        expectedLength = plainLength(Number(contentLength));
        if (expectedLength === null) throw new MteRelayError('framing_failed', `invalid sealed content-length ${contentLength}`);
      }
      stream = decodeBody(res.body, bodyOpener(context, pos, { sized: !streaming, expectedLength }), done);
    } else {
      await res.body?.cancel();
      done();
    }
    const response = new Response(stream, { status: res.status, statusText: res.statusText, headers: decodedHeaders });
    Object.defineProperty(response, 'url', { value: url.href });
    return { response };
  } catch (error) {
    await res.body?.cancel().catch(() => {});
    done();
    throw error;
  }
}

/**
 * Decodes a sealed wire body into the plain body stream, record by record as bytes arrive.
 * @param {ReadableStream<Uint8Array>} wire
 * @param {import('./_stream.js').StreamOpener} opener
 * @param {() => void} done called once when the body ended, failed or was cancelled
 * @returns {ReadableStream<Uint8Array>}
 */
function decodeBody(wire, opener, done) {
  const reader = wire.getReader();
  return new ReadableStream(
    {
      async pull(controller) {
        try {
          for (;;) {
            const { done: ended, value } = await reader.read();
            if (ended) {
              opener.finish();
              controller.close();
              done();
              return;
            }
            const plain = (await opener.push(value)).filter((c) => c.length > 0);
            for (const c of plain) controller.enqueue(c);
            if (plain.length > 0) return;
          }
        } catch (error) {
          controller.error(error);
          reader.cancel(error).catch(() => {});
          done();
        }
      },
      cancel(reason) {
        done();
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

function once(fn) {
  let called = false;
  return () => {
    if (!called) {
      called = true;
      fn();
    }
  };
}
