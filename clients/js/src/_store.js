/**
 * Client token persistence per relay origin: `localStorage` when the environment has a usable one
 * (browsers), otherwise an in-memory map for the life of the process.
 * @module
 */

const KEY_PREFIX = 'pqrelay:client-id:';
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

/**
 * @param {string} origin relay origin
 * @returns {string | null} the stored token, if any
 */
export function loadToken(origin) {
  const ls = storage();
  if (ls) {
    try {
      return ls.getItem(KEY_PREFIX + origin);
    } catch {
      // fall through to memory
    }
  }
  return memory.get(origin) ?? null;
}

/**
 * @param {string} origin relay origin
 * @param {string} token newest token the relay gave
 */
export function saveToken(origin, token) {
  memory.set(origin, token);
  const ls = storage();
  if (ls) {
    try {
      ls.setItem(KEY_PREFIX + origin, token);
    } catch {
      // quota or privacy mode: memory copy is enough
    }
  }
}
