// pqrelay test app: login, file upload with progress and SHA-256 check, and a wire panel.
// Served by the relay at /demo/; the client bundle is the relay's /public/mte-relay-browser.js.
import { initMteRelayClient, mteFetch, relayFingerprint, sha256Stream } from '/public/mte-relay-browser.js';

/** Files up to this size are hashed with WebCrypto in one go; larger ones chunk by chunk. */
const WEBCRYPTO_HASH_LIMIT = 64 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
const relayInput = $('relay-url');
relayInput.value = localStorage.getItem('pqrelay-demo:relay') ?? location.origin;

const relayUrl = () => relayInput.value.trim().replace(/\/+$/, '');
let connected = null;

/** Discovers and pairs with the relay in the box (again whenever the box changes). */
function connect() {
  const url = relayUrl();
  if (connected?.url !== url) {
    localStorage.setItem('pqrelay-demo:relay', url);
    $('relay-status').textContent = `Pairing with ${url}…`;
    $('relay-fingerprint').textContent = '(not paired yet)';
    const ready = initMteRelayClient({ relayUrl: url, onWire: showWire }).then(
      () => {
        $('relay-status').textContent = `Paired with ${url}.`;
        $('relay-fingerprint').textContent = relayFingerprint(url);
      },
      (error) => {
        connected = null;
        $('relay-status').textContent = `${error.name}: ${error.message}`;
        throw error;
      },
    );
    connected = { url, ready };
  }
  return connected.ready;
}
relayInput.addEventListener('change', () => connect().catch(() => {}));

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

function showWire(info) {
  if (info.direction !== 'request') return;
  const lines = [`${info.method} ${info.url}`];
  for (const [name, value] of Object.entries(info.headers)) lines.push(`${name}: ${value}`);
  lines.push('', info.bodyStart ? `body (first ${info.bodyStart.length} bytes, sealed):\n${hex(info.bodyStart)}` : '(no body)');
  $('wire-sent').textContent = lines.join('\n');
}

function show(el, text, ok) {
  el.textContent = text;
  el.className = `result ${ok ? 'ok' : 'bad'}`;
}

/** Runs `task` with `button` disabled, showing any error in `out`. */
async function busy(button, out, task) {
  button.disabled = true;
  try {
    await connect();
    await task();
  } catch (error) {
    show(out, `${error.name}${error.code ? ` (${error.code})` : ''}: ${error.message}`, false);
  } finally {
    button.disabled = false;
  }
}

$('login-btn').addEventListener('click', () =>
  busy($('login-btn'), $('login-result'), async () => {
    const res = await mteFetch(`${relayUrl()}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: $('login-user').value, password: $('login-pass').value }),
    });
    show($('login-result'), `${res.status} ${res.statusText}\n${await res.text()}`, res.ok);
  }),
);

async function sha256Hex(file) {
  if (file.size <= WEBCRYPTO_HASH_LIMIT) {
    const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
    return hex(new Uint8Array(digest)).replaceAll(' ', '');
  }
  return sha256Stream(file);
}

$('upload-btn').addEventListener('click', () =>
  busy($('upload-btn'), $('upload-result'), async () => {
    const file = $('file').files[0];
    if (!file) throw new Error('choose a file first');
    const bar = $('upload-progress');
    bar.value = 0;
    show($('upload-result'), `Uploading ${file.name} (${file.size} bytes)…`, true);
    const localHash = sha256Hex(file);
    const started = performance.now();
    const res = await mteFetch(`${relayUrl()}/upload`, { method: 'POST', body: file }, {
      onUploadProgress: ({ loaded, total }) => (bar.value = total ? loaded / total : 0),
    });
    const answer = await res.json();
    const seconds = ((performance.now() - started) / 1000).toFixed(2);
    const expected = await localHash;
    const match = answer.size === file.size && answer.sha256 === expected;
    bar.value = 1;
    show(
      $('upload-result'),
      `${res.status}: upstream saw ${answer.size} bytes, sha256 ${answer.sha256}\n` +
        `page computed ${file.size} bytes, sha256 ${expected}\n` +
        `${match ? 'MATCH' : 'MISMATCH'} — ${seconds} s`,
      res.ok && match,
    );
  }),
);

$('wire-btn').addEventListener('click', () =>
  busy($('wire-btn'), $('wire-upstream'), async () => {
    const res = await mteFetch(`${relayUrl()}/headers?demo=1`, { headers: { authorization: 'Bearer demo-token' } });
    $('wire-upstream').textContent = JSON.stringify(await res.json(), null, 2);
  }),
);

connect().catch(() => {});
