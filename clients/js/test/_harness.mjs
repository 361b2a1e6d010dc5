// Real processes for the end-to-end tests: the relay binary (PQRELAY_BIN) and its demo upstream
// (`pqrelay demo-upstream --port N`), each on a free loopback port, waited for until they answer
// and always killed at the end (also when a test fails or the test process exits early).
// No mocks: what the tests talk to is the relay a deployment runs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const BIN = process.env.PQRELAY_BIN || null;

/** `false`, or why the suites that need the relay are skipped (printed once per file). */
export const skipReason = BIN
  ? false
  : 'PQRELAY_BIN is not set: set it to the relay binary (e.g. PQRELAY_BIN=/work/cargo-target/debug/pqrelay after `cargo build -p pqrelay`)';
if (BIN && !existsSync(BIN)) throw new Error(`PQRELAY_BIN=${BIN} does not exist (build it with cargo build -p pqrelay)`);

export const SECRET = 'pqrelay-js-tests-client-id-secret-0123456789';
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
  constructor(name, args, env) {
    this.name = name;
    this.args = args;
    this.env = env;
    this.log = '';
    this.child = null;
    this.exited = null;
  }

  start() {
    const child = spawn(BIN, this.args, { env: { PATH: process.env.PATH ?? '', ...this.env }, stdio: ['ignore', 'pipe', 'pipe'] });
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
    return `${this.name} (${BIN} ${this.args.join(' ')}) output:\n${this.log.slice(-4000)}`;
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
export async function startStack({ relayEnv = {}, corsOrigins } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'pqrelay-js-'));
  const upPort = await freePort();
  const upstream = new Proc('demo upstream', ['demo-upstream', '--port', String(upPort)], {}).start();
  const stack = {
    dir,
    upstream,
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
    await waitReady(`${stack.upstreamUrl}/`, upstream);
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
