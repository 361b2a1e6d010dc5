// A small relay for the delivery-rule tests (PROTOCOL.md §12), written from PROTOCOL.md with the
// relay-side helpers of _relay_side.mjs: discovery, pairing, and exchanges with the relay's counter
// and retry rules. Each exchange it accepts "runs" (it counts the decoded path, as an upstream
// would) and answers a sealed 200 carrying the count, unless the next entry of `script` says
// otherwise: an authenticated error with a verdict (the relay's own answer), a forged plain error
// or a cut connection after the request ran (an attacker on the wire). The real relay and
// `pqrelay-attacker` are exercised by relay.test.mjs and attacker.test.mjs; this one reaches the
// verdicts an attacker cannot produce (`unknown`, `partial`), deterministically and in milliseconds.
import { createServer } from 'node:http';
import { b64encode } from '../src/_bytes.js';
import { errorTag } from '../src/_error_tag.js';
import { openUrl, sealHeaders } from '../src/_exchange.js';
import { FLAG_HEADERS, FLAG_RETRY, formatDiscoveryHeader, formatExchangeHeader, parseRelayHeader } from '../src/_headers.js';
import { DIR_REQUEST, DIR_RESPONSE, importKey } from '../src/_seal.js';
import { acceptCounter, answerPairing, issueToken, parsePairingRequest, relayKeyFrom } from './_relay_side.mjs';

const random = (n) => globalThis.crypto.getRandomValues(new Uint8Array(n));
const SECRET = 'scripted relay client-id secret';

/**
 * @typedef {{ kind: 'dead' | 'unknown' | 'partial' | 'complete', status: number, code: string }
 *   | { kind: 'forge', status: number, code?: string } | { kind: 'cut' } | { kind: 'drop' }} Fault
 * `dead`/`unknown`: the request does not run (`unknown`: the counter is not spent either);
 * `partial`/`complete`/`forge`/`cut`: it runs, then the answer is that; `drop`: the connection
 * closes before the relay sees the request.
 */

export async function startScriptedRelay() {
  const key = relayKeyFrom('scripted-relay-key-value-0123456789-abcdefghij');
  /** @type {Map<string, { e: bigint, ck: Uint8Array, kid: Uint8Array }>} */
  const pairs = new Map();
  const relay = {
    /** @type {Fault[]} faults for the next exchanges, in order */
    script: [],
    /** @type {Map<string, number>} how often each path ran */
    counts: new Map(),
    /** exchanges seen: { counter, retry, outcome } */
    log: [],
    pairings: 0,
    url: '',
    /** Forgets every pair, as a relay restarted with memory state. */
    forgetPairs: () => pairs.clear(),
    close: () =>
      new Promise((ok) => {
        server.close(ok);
        server.closeAllConnections();
      }),
  };

  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const body = Buffer.concat(chunks).toString('utf8');
    const path = new URL(req.url, 'http://x').pathname;
    if (path === '/api/mte-relay') {
      const { token } = issueToken(SECRET, random(16));
      res.writeHead(200, {
        'x-mte-relay': formatDiscoveryHeader(token),
        'x-mte-relay-info': 'versions=2;max-pairs=25;chunk-size=65536;max-skip=16',
        'x-mte-relay-keys': b64encode(key.entry),
      });
      res.end();
      return;
    }
    if (req.headers['x-mte-relay'] === undefined) {
      res.writeHead(404).end();
      return;
    }
    const header = parseRelayHeader(req.headers['x-mte-relay']);
    if (path === '/api/mte-pair') {
      relay.pairings++;
      const request = parsePairingRequest(body, 25);
      const answer = answerPairing([key], header.id, request, random(64));
      request.pids.forEach((pid, i) => pairs.set(`${b64encode(header.id)}.${b64encode(pid)}`, { e: 0n, ck: answer.chainKeys[i], kid: answer.kid }));
      res.writeHead(200, { 'x-mte-relay': formatDiscoveryHeader(header.token), 'content-type': 'application/json' }).end(answer.body);
      return;
    }
    await exchange(req, res, header);
  });

  async function exchange(req, res, h) {
    const plainError = (status, code) => res.writeHead(status, { 'x-mte-relay-error': code, 'content-type': 'application/json' }).end(JSON.stringify({ status, error: code, message: code }));
    const name = `${b64encode(h.id)}.${b64encode(h.pid)}`;
    const state = pairs.get(name);
    const retry = (h.flags & FLAG_RETRY) !== 0;
    const entry = { counter: h.counter, retry, outcome: '' };
    relay.log.push(entry);
    const fault = relay.script.shift() ?? null;
    if (fault?.kind === 'drop') {
      entry.outcome = 'drop';
      return res.socket.destroy();
    }
    if (!state) {
      entry.outcome = '563';
      return plainError(563, 'state_not_found');
    }
    let accepted;
    let refused = false;
    try {
      accepted = acceptCounter(state, h.counter, 16, retry);
    } catch (error) {
      if (error.kind !== 'retry_refused') {
        entry.outcome = '564';
        return plainError(564, 'counter_rejected');
      }
      accepted = error.result;
      refused = true;
    }
    pairs.set(name, accepted.after); // committed before anything else (§7)
    const ctx = { id: h.id, pid: h.pid, counter: h.counter, method: req.method, requestKey: await importKey(accepted.keys.kq), responseKey: await importKey(accepted.keys.ks) };
    const tagged = (status, code, verdict) => {
      const tag = errorTag(accepted.keys.ke, { id: h.id, pid: h.pid, counter: h.counter, status, code, verdict });
      res.writeHead(status, { 'x-mte-relay-error': code, 'x-mte-relay-verdict': verdict, 'x-mte-relay-tag': b64encode(tag), 'content-type': 'application/json' });
      res.end(JSON.stringify({ status, error: code, message: code, verdict }));
    };
    if (refused) {
      entry.outcome = 'retry_refused';
      return tagged(564, 'retry_refused', 'dead');
    }
    const target = await openUrl(ctx, { dir: DIR_REQUEST, flags: h.flags, status: 0 }, req.url);
    entry.outcome = fault?.kind ?? 'ok';
    if (fault?.kind === 'dead') return tagged(fault.status, fault.code, 'dead');
    if (fault?.kind === 'unknown') {
      pairs.set(name, state); // the counter could not be spent
      return tagged(fault.status, fault.code, 'unknown');
    }
    const count = (relay.counts.get(target) ?? 0) + 1; // it runs
    relay.counts.set(target, count);
    if (fault?.kind === 'partial' || fault?.kind === 'complete') return tagged(fault.status, fault.code, fault.kind);
    if (fault?.kind === 'forge') return plainError(fault.status, fault.code ?? 'decode_failed');
    if (fault?.kind === 'cut') return res.socket.destroy();
    const flags = FLAG_HEADERS;
    const eh = await sealHeaders(ctx, { dir: DIR_RESPONSE, flags, status: 200 }, [['x-count', String(count)]], '');
    res.writeHead(200, { 'x-mte-relay': formatExchangeHeader({ token: h.token, pid: h.pid, counter: h.counter, flags }), 'x-mte-relay-eh': eh, 'content-length': '0' }).end();
  }

  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  relay.url = `http://127.0.0.1:${server.address().port}`;
  return relay;
}
