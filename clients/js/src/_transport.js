/**
 * Sending one sealed request. Node's fetch can stream a body with an exact `content-length`, so
 * there the sealed body is a pull-driven ReadableStream (memory stays at one record). Browsers
 * forbid setting `content-length` and allow streaming uploads only over HTTP/2, so there the
 * sealed records are collected into a Blob first; when upload progress is wanted the Blob goes
 * through XMLHttpRequest, the only browser API that reports upload progress.
 * @module
 */
import { encodedLength, RECORD_OVERHEAD } from './_stream.js';

/** Statuses whose responses never have a body (the Response constructor refuses one). */
export const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** Bytes of sealed records held in memory before they are folded into the request Blob. */
const BLOB_FOLD_SIZE = 8 * 1024 * 1024;

/** True in Node (fetch there accepts a stream body with a caller-set content-length). */
export const NODE_FETCH = typeof process !== 'undefined' && typeof process.versions?.node === 'string';

/**
 * @typedef {object} WireRequest
 * @property {string} url absolute URL on the relay
 * @property {string} method
 * @property {Headers} headers
 * @property {AsyncIterable<Uint8Array> | null} records sealed body records, or null without flag body
 * @property {boolean} empty the plain body is empty: sent without flag body, with content-length: 0
 * @property {number | null} plainSize plain body length (sized mode) or null (streaming / no body)
 * @property {RequestInit} init fetch options passed through (credentials, signal, ...)
 * @property {((p: { loaded: number, total: number | null }) => void) | undefined} onUploadProgress
 */

/**
 * Sends the request and resolves with the wire response (headers received, body still streaming).
 * @param {WireRequest} req
 * @returns {Promise<Response>}
 */
export async function send(req) {
  if (!req.records) {
    // fetch sends content-length: 0 for an empty BufferSource body (and no content-type), and for
    // POST and PUT without a body; other methods without a body get no content-length, as plain.
    const res = await fetch(req.url, { ...req.init, method: req.method, headers: req.headers, body: req.empty ? new Uint8Array(0) : undefined });
    if (req.empty) req.onUploadProgress?.({ loaded: 0, total: 0 });
    return res;
  }
  if (NODE_FETCH) {
    if (req.plainSize !== null) req.headers.set('content-length', String(encodedLength(req.plainSize)));
    const body = recordStream(req.records, req.plainSize, req.onUploadProgress);
    return fetch(req.url, { ...req.init, method: req.method, headers: req.headers, body, duplex: 'half' });
  }
  const body = await collectBlob(req.records);
  const total = req.plainSize ?? 0;
  if (req.onUploadProgress && typeof XMLHttpRequest !== 'undefined') return sendXhr(req, body, total);
  const res = await fetch(req.url, { ...req.init, method: req.method, headers: req.headers, body });
  req.onUploadProgress?.({ loaded: total, total });
  return res;
}

/**
 * Collects sealed records into a Blob, folding them in every BLOB_FOLD_SIZE bytes so that the
 * browser can move the data out of the JS heap (large Blobs may be kept on disk).
 * @param {AsyncIterable<Uint8Array>} records
 * @returns {Promise<Blob>}
 */
async function collectBlob(records) {
  let blob = new Blob([]);
  let parts = [];
  let pending = 0;
  for await (const record of records) {
    parts.push(record);
    pending += record.length;
    if (pending >= BLOB_FOLD_SIZE) {
      blob = new Blob([blob, ...parts]);
      parts = [];
      pending = 0;
    }
  }
  return new Blob([blob, ...parts]);
}

function recordStream(records, total, onProgress) {
  const iterator = records[Symbol.asyncIterator]();
  let loaded = 0;
  return new ReadableStream(
    {
      async pull(controller) {
        const { done, value } = await iterator.next();
        if (done) {
          controller.close();
          return;
        }
        controller.enqueue(value);
        loaded += value.length - RECORD_OVERHEAD;
        onProgress?.({ loaded, total });
      },
      cancel(reason) {
        return iterator.return?.(reason);
      },
    },
    { highWaterMark: 0 },
  );
}

function sendXhr(req, body, total) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const signal = req.init.signal;
    xhr.open(req.method, req.url);
    xhr.responseType = 'arraybuffer';
    xhr.withCredentials = req.init.credentials === 'include';
    req.headers.forEach((value, name) => xhr.setRequestHeader(name, value));
    xhr.upload.onprogress = (e) => {
      const loaded = e.lengthComputable && e.total > 0 ? Math.floor((e.loaded / e.total) * total) : 0;
      req.onUploadProgress?.({ loaded, total });
    };
    xhr.onload = () => {
      req.onUploadProgress?.({ loaded: total, total });
      const payload = NULL_BODY_STATUSES.has(xhr.status) ? null : xhr.response;
      resolve(new Response(payload, { status: xhr.status, statusText: xhr.statusText, headers: parseRawHeaders(xhr.getAllResponseHeaders()) }));
    };
    xhr.onerror = () => reject(new TypeError('Failed to fetch'));
    xhr.onabort = () => reject(signal?.reason ?? new DOMException('The operation was aborted.', 'AbortError'));
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}

function parseRawHeaders(raw) {
  const headers = new Headers();
  for (const line of raw.trim().split(/[\r\n]+/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return headers;
}
