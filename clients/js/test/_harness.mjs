// Real processes for the end-to-end tests: the relay binary (PQRELAY_BIN), its demo upstream
// (`pqrelay demo-upstream --port N`) or the counting test upstream (`pqrelay-test-upstream`), and
// the on-path attacker (`pqrelay-attacker`), each on a free loopback port, waited for until they
// answer and always killed at the end (also when a test fails or the test process exits early).
// No mocks: what the tests talk to is the relay a deployment runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatFingerprint } from '../src/_relay_key.js';
import { relayKeyFrom } from './_relay_side.mjs';

export const BIN = process.env.PQRELAY_BIN || null;
/** The testkit binaries, built beside the relay (`cargo build -p pqrelay-testkit --bins`). */
export const ATTACKER_BIN = process.env.PQRELAY_ATTACKER || (BIN && join(dirname(BIN), 'pqrelay-attacker'));
export const TEST_UPSTREAM_BIN = process.env.PQRELAY_TEST_UPSTREAM || (BIN && join(dirname(BIN), 'pqrelay-test-upstream'));

/** `false`, or why the suites that need the relay are skipped (printed once per file). */
export const skipReason = BIN
  ? false
  : 'PQRELAY_BIN is not set: set it to the relay binary (e.g. PQRELAY_BIN=/work/cargo-target/debug/pqrelay after `cargo build -p pqrelay`)';
if (BIN && !existsSync(BIN)) throw new Error(`PQRELAY_BIN=${BIN} does not exist (build it with cargo build -p pqrelay)`);

/** `false`, or why the attacker suites are skipped. */
export const attackerSkipReason =
  skipReason ||
  (!existsSync(ATTACKER_BIN) || !existsSync(TEST_UPSTREAM_BIN)
    ? `${ATTACKER_BIN} or ${TEST_UPSTREAM_BIN} is missing: build them with cargo build -p pqrelay-testkit --bins`
    : false);

export const SECRET = 'pqrelay-js-tests-client-id-secret-0123456789';
/** The relay's key: without RELAY_KEYS it derives it from CLIENT_ID_SECRET (PROTOCOL.md §4). */
export const RELAY_FP = formatFingerprint(relayKeyFrom(SECRET, { fromSecret: true }).keyId);
const READY_TIMEOUT_MS = 30_000;

/** @type {Set<import('node:child_process').ChildProcess>} */
const live = new Set();
process.on('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** One child process with its output kept (the last 64 KiB) for error messages. */
export class Proc {
  constructor(name, args, env, bin = BIN) {
    this.name = name;
    this.args = args;
    this.env = env;
    this.bin = bin;
    this.log = '';
    this.child = null;
    this.exited = null;
  }

  start() {
    const child = spawn(this.bin, this.args, { env: { PATH: process.env.PATH ?? '', ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    child.on('error', (e) => (this.log += `\n[spawn error] ${e.message}`));
    live.add(child);
    this.exited.then(() => live.delete(child));
    const keep = (d) => {
      this.log = (this.log + d.toString()).slice(-65536);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    return this;
  }

  get running() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 2000) {
    if (!this.child || !this.running) return;
    this.child.kill(graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  describe() {
    return `${this.name} (${this.bin} ${this.args.join(' ')}) output:\n${this.log.slice(-4000)}`;
  }

  /** Waits until the output holds `pattern` (e.g. a "listening at" line), failing early on exit. */
  async waitFor(pattern, timeoutMs = READY_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = this.log.match(pattern);
      if (m) return m;
      if (!this.running) throw new Error(`${this.name} exited before printing ${pattern}: ${this.describe()}`);
      await sleep(20);
    }
    throw new Error(`${this.name} did not print ${pattern} within ${timeoutMs} ms: ${this.describe()}`);
  }
}

/**
 * `pqrelay-test-upstream --port N`: `/count/<name>` counts every request, `GET /counts/<name>`
 * reads a counter, `GET /headers` answers the request's headers.
 */
export async function startTestUpstream() {
  const port = await freePort();
  const proc = new Proc('test upstream', ['--port', String(port)], {}, TEST_UPSTREAM_BIN).start();
  const [, url] = await proc.waitFor(/test upstream listening at (http:\/\/[^\s]+)/);
  return {
    proc,
    url,
    /** How many requests reached `/count/<name>`. */
    async count(name) {
      const res = await fetch(`${url}/counts/${name}`);
      return (await res.json()).count;
    },
    stop: () => proc.stop(),
  };
}

/**
 * `pqrelay-attacker --mode MODE` between the client and `relayUrl`, on `port` (a free one by
 * default; the same port again puts another attacker on the same relay origin).
 */
export async function startAttacker(relayUrl, mode, { port, times } = {}) {
  const listen = port ?? (await freePort());
  const args = ['--listen', `127.0.0.1:${listen}`, '--relay', relayUrl, '--mode', mode, ...(times ? ['--times', String(times)] : [])];
  for (let tries = 0; ; tries++) {
    const proc = new Proc(`attacker (${mode})`, args, {}, ATTACKER_BIN).start();
    try {
      const [, url] = await proc.waitFor(/attacker listening at (http:\/\/[^\s]+)/);
      return { proc, url, port: listen, stop: () => proc.stop() };
    } catch (e) {
      await proc.stop(0);
      if (tries >= 20) throw e;
      await sleep(100); // the port of the previous attacker may not be free yet
    }
  }
}

/** Polls `url` until it answers 200, failing early when `proc` exits. */
export async function waitReady(url, proc, timeoutMs = READY_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (!proc.running) throw new Error(`${proc.name} exited before it was ready: ${proc.describe()}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.cause?.code ?? e.message;
    }
    await sleep(50);
  }
  throw new Error(`${proc.name} not ready at ${url} after ${timeoutMs} ms (${last}): ${proc.describe()}`);
}

/**
 * The demo upstream and a relay in front of it (memory state, DEMO on).
 * `relayEnv` adds or overrides relay settings; `corsOrigin` defaults to the relay's own origin
 * (the demo page's).
 */
export async function startStack({ relayEnv = {}, corsOrigins, testUpstream = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pqrelay-js-'));
  const counting = testUpstream ? await startTestUpstream() : null;
  const upPort = counting ? Number(new URL(counting.url).port) : await freePort();
  const upstream = counting ? counting.proc : new Proc('demo upstream', ['demo-upstream', '--port', String(upPort)], {}).start();
  const stack = {
    dir,
    upstream,
    counting,
    upstreamUrl: `http://127.0.0.1:${upPort}`,
    relay: null,
    relayPort: 0,
    relayUrl: '',
    async startRelay() {
      this.relay = new Proc('relay', [], this.relayEnv).start();
      await waitReady(`${this.relayUrl}/api/mte-ready`, this.relay);
    },
    /** Kills the relay (memory state lost) and starts it again on the same port. */
    async restartRelay() {
      await this.relay.stop(0);
      await this.startRelay();
    },
    async stop() {
      await Promise.all([this.relay?.stop(), upstream.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    if (!counting) await waitReady(`${stack.upstreamUrl}/`, upstream);
    stack.relayPort = await freePort();
    stack.relayUrl = `http://127.0.0.1:${stack.relayPort}`;
    stack.relayEnv = {
      UPSTREAM: stack.upstreamUrl,
      CLIENT_ID_SECRET: SECRET,
      CORS_ORIGINS: corsOrigins ?? stack.relayUrl,
      HOST: '127.0.0.1',
      PORT: String(stack.relayPort),
      DEMO: 'true',
      THREADS: '2',
      PID_FILE: join(dir, 'relay.pid'),
      UPGRADE_SOCK: join(dir, 'relay.sock'),
      ...(typeof relayEnv === 'function' ? relayEnv(stack) : relayEnv),
    };
    await stack.startRelay();
  } catch (e) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/**
 * The counting test upstream, a relay in front of it, and the attackers a test puts in front of
 * the relay (`attacker(mode)`); `stop` ends them all.
 */
export async function startAttackBench() {
  const stack = await startStack({ testUpstream: true });
  const attackers = [];
  return {
    stack,
    count: (name) => stack.counting.count(name),
    async attacker(mode, options) {
      const a = await startAttacker(stack.relayUrl, mode, options);
      attackers.push(a);
      return a;
    },
    async stop() {
      await Promise.all(attackers.map((a) => a.stop()));
      await stack.stop();
    },
  };
}
