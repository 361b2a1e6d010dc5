/**
 * What the client keeps per relay origin (PROTOCOL.md §3, §13): its client token and, with trust
 * on first use, the ids of the relay keys it trusts. `localStorage` when the environment has a
 * usable one (browsers), otherwise an in-memory map for the life of the process.
 *
 * Keys: `pqrelay:client-id:<origin>` (the token) and `pqrelay:relay-keys:<origin>` (trusted key
 * fingerprints, `,`-separated).
 * @module
 */

const TOKEN_PREFIX = 'pqrelay:client-id:';
const KEYS_PREFIX = 'pqrelay:relay-keys:';
/** @type {Map<string, string>} */
const memory = new Map();

function storage() {
  try {
    const ls = globalThis.localStorage;
    if (ls && typeof ls.getItem === 'function') return ls;
  } catch {
    // Access can throw (e.g. storage disabled, sandboxed iframes): fall back to memory.
  }
  return null;
}

function load(key) {
  const ls = storage();
  if (ls) {
    try {
      return ls.getItem(key);
    } catch {
      // fall through to memory
    }
  }
  return memory.get(key) ?? null;
}

function save(key, value) {
  if (value === null) memory.delete(key);
  else memory.set(key, value);
  const ls = storage();
  if (ls) {
    try {
      if (value === null) ls.removeItem(key);
      else ls.setItem(key, value);
    } catch {
      // quota or privacy mode: memory copy is enough
    }
  }
}

/**
 * @param {string} origin relay origin
 * @returns {string | null} the stored token, if any
 */
export const loadToken = (origin) => load(TOKEN_PREFIX + origin);

/**
 * @param {string} origin relay origin
 * @param {string} token newest token the relay gave
 */
export const saveToken = (origin, token) => save(TOKEN_PREFIX + origin, token);

/**
 * @param {string} origin relay origin
 * @returns {string[]} the fingerprints of the relay keys trusted on first use (empty: none yet)
 */
export function loadTrustedKeys(origin) {
  const value = load(KEYS_PREFIX + origin);
  return value ? value.split(',').filter(Boolean) : [];
}

/**
 * @param {string} origin relay origin
 * @param {string[] | null} fingerprints the trusted keys; null forgets them
 */
export const saveTrustedKeys = (origin, fingerprints) => save(KEYS_PREFIX + origin, fingerprints && fingerprints.length ? fingerprints.join(',') : null);
