// Discovery failures are reported clearly. Real sockets only: a closed port, and an ordinary HTTP
// server that is not a pqrelay.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { MteRelayError, mteFetch } from '../src/index.js';

test('unreachable_relay_is_reported_as_network_or_cors', async () => {
  const server = createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r)); // the port is now closed
  await assert.rejects(mteFetch(`http://127.0.0.1:${port}/x`), (e) => e instanceof MteRelayError && e.code === 'cors_blocked' && /CORS/.test(e.message));
});

test('server_without_x_mte_relay_is_not_a_relay', async () => {
  const server = createServer((req, res) => res.writeHead(404).end());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const { port } = server.address();
    await assert.rejects(mteFetch(`http://127.0.0.1:${port}/x`), (e) => e instanceof MteRelayError && e.code === 'not_a_relay' && e.status === 404);
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});
