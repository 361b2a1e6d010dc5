// Pieces the Chromium tests share: Debian's Chromium through playwright-core (never a downloaded
// browser), a recording TCP forwarder in front of the relay (what really crossed the wire), a
// small static server for a page on another origin, and the artifacts folder.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const CLIENT_DIR = resolve(here, '..');
export const ARTIFACTS = resolve(CLIENT_DIR, '../../test-artifacts');
export const CHROMIUM = process.env.PQRELAY_CHROMIUM || '/usr/bin/chromium';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Headless Chromium with a new, empty user-data-dir (removed by `close`). */
export async function launchChromium() {
  const profile = mkdtempSync(join(tmpdir(), 'pqrelay-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1100, height: 1300 } });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}

/**
 * A TCP forwarder on a free loopback port to `tap.targetPort`, keeping every byte in both directions
 * (`take()` hands over what was recorded since the last call). The browser talks to the relay
 * through it, so the tests can search the real wire for plaintext.
 */
export async function startTap(targetPort = 0) {
  const up = [];
  const down = [];
  const sockets = new Set();
  const server = createServer((client) => {
    const relay = connect(tap.targetPort, '127.0.0.1');
    sockets.add(client).add(relay);
    client.on('data', (d) => up.push(Buffer.from(d)));
    relay.on('data', (d) => down.push(Buffer.from(d)));
    client.pipe(relay);
    relay.pipe(client);
    const end = () => {
      client.destroy();
      relay.destroy();
      sockets.delete(client);
      sockets.delete(relay);
    };
    client.on('error', end).on('close', end);
    relay.on('error', end).on('close', end);
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const tap = {
    targetPort,
    port: server.address().port,
    take() {
      const out = { up: Buffer.concat(up.splice(0)), down: Buffer.concat(down.splice(0)) };
      return out;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((ok) => server.close(ok));
    },
  };
  return tap;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css' };

/**
 * The demo page and the client bundle served from this repo by a plain Node server: a page on
 * an origin the relay does not allow.
 */
export async function startOtherOrigin() {
  const files = {
    '/demo/': 'demo/index.html',
    '/demo/demo.js': 'demo/demo.js',
    '/demo/demo.css': 'demo/demo.css',
    '/public/mte-relay-browser.js': 'dist/mte-relay-browser.js',
  };
  const server = createHttpServer((req, res) => {
    const file = files[new URL(req.url, 'http://x').pathname];
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[file.slice(file.lastIndexOf('.'))] }).end(readFileSync(join(CLIENT_DIR, file)));
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    // Chromium may hold a connection it opened ahead of use (no request on it yet), which
    // server.close() waits for until Node's 60 s headers timeout: end every connection.
    close: () => new Promise((ok) => {
      server.close(ok);
      server.closeAllConnections();
    }),
  };
}
