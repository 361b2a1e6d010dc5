/**
 * One `mteFetch` call: normalise the caller's request, run it as one or more attempts on pairs
 * (seal URL, headers and body; decode the response as a stream), and decide after each failed
 * attempt whether it may be sent again (PROTOCOL.md §12):
 *
 * - idempotent requests (GET HEAD OPTIONS TRACE PUT DELETE, or an `idempotency-key` header): after
 *   a relay error the §11.1 action (re-pair, re-discover) and one resend on the pair just made;
 *   after a lost connection one resend;
 * - other requests reach the upstream at most once: resent only after an authenticated `dead`
 *   verdict, or once on the same pair with counter n+1 and flag `retry` (which the relay refuses if
 *   the first attempt was accepted); otherwise `MteOutcomeUnknownError`.
 * @module
 */
import { blobSource, bytesSource, recordPlaintexts, streamSource, toBytes } from './_body.js';
import { bytesEqual } from './_bytes.js';
import { verifyErrorReply } from './_error_tag.js';
import { MteOutcomeUnknownError, MteRelayError } from './_errors.js';
import { bodyOpener, bodySealer, openHeaders, sealHeaders, sealUrl, startExchange } from './_exchange.js';
import { FLAG_BODY, FLAG_HEADERS, FLAG_RETRY, FLAG_STREAMING, FLAG_URL, formatExchangeHeader, isForbiddenRequestHeader, parseRelayHeaderAs } from './_headers.js';
import { MAX_COUNTER } from './_schedule.js';
import { DIR_REQUEST, DIR_RESPONSE } from './_seal.js';
import { plainLength } from './_stream.js';
import { NODE_FETCH, NULL_BODY_STATUSES, send } from './_transport.js';

/** fetch options passed through to the wire request (its mode is always fetch's default, cors). */
const PASSED_INIT = ['credentials', 'cache', 'redirect', 'referrer', 'referrerPolicy', 'keepalive', 'signal'];
/** RFC 9110 §9.2.2. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** Headers always sealed: the relay forwards no other plain header than cookies (§9.2). */
const ALWAYS_SEALED = new Set(['content-type', 'idempotency-key']);
/** Statuses after which the client does not use the pair again (they end the pair or the client id). */
const PAIR_ENDING = new Set([560, 563, 566, 568, 569]);
/** The relay's own protocol errors (§11.1). */
const isProtocolError = (status) => status >= 559 && status <= 569;
/** Errors after which sending again can help (the others — 400, 404, 413, … — would repeat). */
const mayResend = (status) => isProtocolError(status) || status === 502 || status === 503 || status === 504;

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
 * Splits the caller's headers into sealed and plain ones. `content-type` and `idempotency-key` are
 * always sealed.
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
    const seal = ALWAYS_SEALED.has(name) || encodeHeaders === true || (listed !== null && listed.has(name));
    (seal ? sealed : plain).push([name, value]);
  }
  return { sealed, plain };
}

/**
 * Whether the upstream may run `prepared` more than once without harm (§12).
 * @param {PreparedRequest} prepared
 * @returns {boolean}
 */
export const isIdempotent = (prepared) => IDEMPOTENT_METHODS.has(prepared.method) || prepared.headers.some(([name]) => name === 'idempotency-key');

/**
 * The outcome of one attempt.
 * @typedef {{ kind: 'response', response: Response }
 *   | { kind: 'error', status: number, code: string | null, verdict: string | null, message: string,
 *       reply: Response | null, failure: Error | null }
 *   | { kind: 'lost', error: Error }} Outcome
 * `error`: `verdict` is null when the reply is unauthenticated; `reply` is the relay's plain error
 * reply (body already read), `failure` what went wrong with a sealed answer that did not open.
 */

/**
 * Runs `prepared` through `relay` under the delivery rules of PROTOCOL.md §12.
 * @param {import('./_relay.js').Relay} relay
 * @param {PreparedRequest} prepared
 * @param {CallSettings} settings
 * @returns {Promise<Response>}
 */
export async function relayFetch(relay, prepared, settings) {
  const idempotent = isIdempotent(prepared);
  const replayable = prepared.body === null || prepared.body.replayable;
  let pair = await relay.acquire();
  let retry = false; // this attempt repeats the previous one on the same pair (flag retry)
  let resentAfterDead = false;
  let errorResends = 0;
  let lostResends = 0;
  for (;;) {
    const outcome = await attempt(relay, pair, prepared, settings, retry);
    if (outcome.kind === 'response') return outcome.response;
    const status = outcome.kind === 'error' ? outcome.status : 0;

    if (idempotent) {
      const again =
        replayable &&
        (outcome.kind === 'lost' ? lostResends++ < 1 : (outcome.failure !== null || mayResend(status) || status < 400) && errorResends++ < 1);
      if (again) {
        pair = await recover(relay, pair, outcome); // the resend runs on the pair just re-paired
        retry = false;
        continue;
      }
      settle(relay, pair, outcome);
      return deliver(outcome, prepared);
    }

    // Non-idempotent: at most one attempt may ever run.
    const verdict = outcome.kind === 'error' ? outcome.verdict : null;
    if (verdict === 'dead' && outcome.code !== 'retry_refused' && !retry) {
      // Authenticated: this attempt never ran and never can.
      if (!resentAfterDead && replayable && mayResend(status)) {
        resentAfterDead = true;
        pair = await recover(relay, pair, outcome);
        continue;
      }
      settle(relay, pair, outcome);
      return deliver(outcome, prepared);
    }
    const usable = !PAIR_ENDING.has(status) && pair.counter <= MAX_COUNTER;
    if (!retry && replayable && usable && (verdict === null || verdict === 'unknown')) {
      retry = true; // same pair, counter n+1: the relay runs it only if attempt n never was
      continue;
    }
    settle(relay, pair, outcome);
    throw outcomeUnknown(outcome, prepared, replayable);
  }
}

/**
 * The §11.1 action for a failed attempt, returning the pair to send again on (held).
 * @param {import('./_relay.js').Relay} relay
 * @param {import('./_relay.js').Pair} pair held by the caller
 * @param {Outcome} outcome
 * @returns {Promise<import('./_relay.js').Pair>}
 */
async function recover(relay, pair, outcome) {
  if (outcome.kind !== 'error' || outcome.code === 'retry_refused') return pair; // the pair is in step
  const status = outcome.status;
  if (status === 563) {
    relay.dropUpTo(pair);
    return relay.renew(pair);
  }
  if (status === 559 || status === 561 || status === 562 || status === 564 || status === 565) return relay.renew(pair);
  if (status === 560 || status === 566 || status === 568 || status === 569) {
    relay.reset(pair, { rediscover: status !== 569 }).catch(() => {});
    return relay.acquire();
  }
  return pair; // 567, 502–504, …: the pair is still in step with the relay
}

/** The §11.1 action when the request is not sent again: the pool stays healthy. */
function settle(relay, pair, outcome) {
  recover(relay, pair, outcome).then(
    (p) => relay.release(p),
    () => {},
  );
}

/** What the caller gets when a failed request is not sent again. */
function deliver(outcome, prepared) {
  if (outcome.kind === 'lost') throw outcome.error;
  if (outcome.failure) throw outcome.failure;
  const { status, code, message, reply } = outcome;
  if (isProtocolError(status)) throw new MteRelayError('relay_error', `the relay answered ${status} ${code ?? ''}: ${message}`, { status, reason: code ?? undefined });
  if (status < 400) throw new MteRelayError('unsealed_response', `the relay answered ${status} without sealed headers; refusing an unauthenticated response`, { status });
  Object.defineProperty(reply, 'url', { value: prepared.url.href });
  return reply; // the relay's other answers (400, 404, 413, 502, …) are ordinary responses, as from fetch
}

function outcomeUnknown(outcome, prepared, replayable) {
  const what =
    outcome.kind === 'lost'
      ? 'the connection was lost before an answer'
      : outcome.failure
        ? `the answer did not open (${outcome.failure.message})`
        : `the relay answered ${outcome.status} ${outcome.code ?? ''}${outcome.verdict ? ` (verdict ${outcome.verdict})` : ' (unauthenticated)'}`;
  const why = replayable ? '' : '; the body could not be sent again';
  return new MteOutcomeUnknownError(`${prepared.method} ${prepared.url.pathname}: ${what}${why}; the upstream may or may not have run it, and it is not sent again`, {
    status: outcome.kind === 'error' ? outcome.status : undefined,
    cause: outcome.kind === 'lost' ? outcome.error : (outcome.failure ?? undefined),
  });
}

/**
 * One attempt on one pair. The pair stays held for the caller after a failure; after a response
 * it is released when the response body ends, fails or is cancelled (at once without a body).
 * @param {import('./_relay.js').Relay} relay
 * @param {import('./_relay.js').Pair} pair
 * @param {PreparedRequest} prepared
 * @param {CallSettings} settings
 * @param {boolean} retry set flag `retry` (§9.1)
 * @returns {Promise<Outcome>}
 */
async function attempt(relay, pair, prepared, settings, retry) {
  let sent;
  try {
    sent = await sendExchange(relay, pair, prepared, settings, retry);
  } catch (error) {
    relay.release(pair); // nothing was sent; the pair moved on and stays usable
    throw error;
  }
  const { context, response } = sent;
  let res;
  try {
    res = await response;
  } catch (error) {
    context.errorKey.fill(0);
    if (prepared.init.signal?.aborted || !(error instanceof TypeError)) {
      relay.release(pair);
      throw error;
    }
    return { kind: 'lost', error };
  }
  try {
    return await decodeResponse(relay, pair, context, res, prepared.url, settings.onWire);
  } finally {
    context.errorKey.fill(0);
  }
}

async function sendExchange(relay, pair, prepared, settings, retry) {
  const { url, method } = prepared;
  // An empty body is sent as no flag body with content-length: 0 (§9.2).
  const body = prepared.body && prepared.body.size !== 0 ? prepared.body : null;
  const empty = prepared.body !== null && body === null;
  const counter = pair.counter;
  const { context, nextChainKey } = await startExchange({ id: relay.id, pid: pair.pid, counter, chainKey: pair.chainKey, method });
  pair.counter = counter + 1n;
  pair.chainKey = nextChainKey; // ck_n is erased before anything is sent

  const flags = FLAG_HEADERS | (settings.encodeUrls ? FLAG_URL : 0) | (body ? FLAG_BODY : 0) | (body && body.size === null ? FLAG_STREAMING : 0) | (retry ? FLAG_RETRY : 0);
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

  const response = send({ url: wireUrl, method, headers, records, empty, plainSize: body ? body.size : null, init: prepared.init, onUploadProgress: settings.onUploadProgress });
  response.catch(() => {}); // handled by the caller; avoid an unhandled rejection meanwhile
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

/**
 * Classifies the wire response: a sealed answer (decoded, delivered as a stream), or an error reply
 * (authenticated by its tag, or not).
 * @returns {Promise<Outcome>}
 */
async function decodeResponse(relay, pair, context, res, url, report) {
  const eh = res.headers.get('x-mte-relay-eh');
  if (eh === null) return errorReply(context, res);
  const done = once(() => relay.release(pair));
  try {
    const value = res.headers.get('x-mte-relay');
    if (value === null) throw new MteRelayError('invalid_header', 'sealed response without x-mte-relay');
    const h = parseRelayHeaderAs(value, 'exchange');
    if (!bytesEqual(h.pid, pair.pid) || h.counter !== context.counter || !relay.acceptToken(h.token, h.id)) {
      throw new MteRelayError('invalid_header', 'response x-mte-relay does not match the request');
    }
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
    return { kind: 'response', response };
  } catch (error) {
    await res.body?.cancel().catch(() => {});
    if (!(error instanceof MteRelayError)) {
      done();
      throw error;
    }
    // A sealed answer that does not open authenticates nothing (outcome 3 of §12).
    return { kind: 'error', status: res.status, code: null, verdict: null, message: error.message, reply: null, failure: error };
  }
}

/** An answer without sealed headers: the relay's error reply, verified with `ke_n` (§11.2). */
async function errorReply(context, res) {
  const text = await res.text().catch(() => '');
  const code = res.headers.get('x-mte-relay-error');
  let verdict = null;
  try {
    verdict = verifyErrorReply(context.errorKey, {
      id: context.id,
      pid: context.pid,
      counter: context.counter,
      status: res.status,
      code,
      verdict: res.headers.get('x-mte-relay-verdict'),
      tag: res.headers.get('x-mte-relay-tag'),
    });
  } catch {
    verdict = null; // unauthenticated: it says nothing about the request's fate
  }
  let message = '';
  try {
    message = String(JSON.parse(text).message ?? '');
  } catch {
    message = text.slice(0, 200);
  }
  const reply = new Response(NULL_BODY_STATUSES.has(res.status) ? null : text, { status: res.status, statusText: res.statusText, headers: res.headers });
  return { kind: 'error', status: res.status, code, verdict, message, reply, failure: null };
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
