/**
 * Strict JSON objects for the pairing messages (PROTOCOL.md §6): exactly the expected keys, each
 * once. `JSON.parse` silently keeps the last of two equal keys, so keys are also counted by a scan
 * of the (already valid) text.
 * @module
 */

/**
 * Whether any object in the valid JSON `text` has the same key twice.
 * @param {string} text valid JSON
 * @returns {boolean}
 */
function hasDuplicateKey(text) {
  /** @type {Array<Set<string> | null>} */
  const stack = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '{') stack.push(new Set());
    else if (c === '[') stack.push(null);
    else if (c === '}' || c === ']') stack.pop();
    else if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      let k = j + 1;
      while (text[k] === ' ' || text[k] === '\t' || text[k] === '\n' || text[k] === '\r') k++;
      const keys = stack.at(-1);
      if (keys && text[k] === ':') {
        const key = JSON.parse(text.slice(i, j + 1));
        if (keys.has(key)) return true;
        keys.add(key);
      }
      i = j;
    }
  }
  return false;
}

/**
 * Parses `text` as a JSON object with exactly the keys `keys`, each once.
 * @param {string} text
 * @param {string[]} keys
 * @returns {Record<string, unknown> | null} null when the text is not such an object
 */
export function parseExactObject(text, keys) {
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return null;
  const got = Object.keys(parsed);
  if (got.length !== keys.length || !keys.every((k) => Object.hasOwn(parsed, k))) return null;
  return hasDuplicateKey(text) ? null : parsed;
}
