/**
 * Relay keys (PROTOCOL.md §4, §5, §13): key configuration entries, key ids and fingerprints, the
 * `x-mte-relay-keys` header, and the choice of the key to pair with.
 *
 * ```
 * entry       = u16(0x647a) || pk          (1218 bytes)
 * id          = SHA-256(entry)             (32 bytes)
 * fingerprint = "sha256:" || b64(id)       (50 characters)
 * ```
 * @module
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { b64decode, b64encode, bytesEqual, concat, u16 } from './_bytes.js';
import { MteRelayError } from './_errors.js';
import { EK_SIZE, isValidEncapsulationKey, KEM_ID } from './_kem.js';

/** Length of a key id. */
export const KEY_ID_SIZE = 32;
/** Length of an X-Wing key configuration entry. */
export const ENTRY_SIZE = 2 + EK_SIZE;
/** Most entries in `x-mte-relay-keys` (and ids in a pairing answer). */
export const MAX_RELAY_KEYS = 8;
const FINGERPRINT_PREFIX = 'sha256:';

/**
 * A relay key the client may pair with.
 * @typedef {object} RelayKey
 * @property {Uint8Array} id SHA-256 of the entry
 * @property {Uint8Array} pk the X-Wing encapsulation key
 * @property {string} fingerprint `sha256:` + b64(id)
 */

const invalid = (message, cause) => new MteRelayError('relay_key_invalid', message, { cause });

/**
 * The printable form of a key id.
 * @param {Uint8Array} id 32 bytes
 * @returns {string}
 */
export const formatFingerprint = (id) => FINGERPRINT_PREFIX + b64encode(id);

/**
 * Parses a fingerprint (`sha256:` + 43 characters of strict b64) into its key id.
 * @param {string} text
 * @returns {Uint8Array} the 32-byte key id
 * @throws {MteRelayError} `relay_key_invalid`
 */
export function parseFingerprint(text) {
  const bad = () => invalid(`${JSON.stringify(text)} is not a relay key fingerprint (sha256: followed by 43 base64url characters)`);
  if (typeof text !== 'string' || !text.startsWith(FINGERPRINT_PREFIX)) throw bad();
  let id;
  try {
    id = b64decode(text.slice(FINGERPRINT_PREFIX.length));
  } catch {
    throw bad();
  }
  if (id.length !== KEY_ID_SIZE) throw bad();
  return id;
}

/**
 * The entry of an X-Wing encapsulation key.
 * @param {Uint8Array} pk 1216 bytes
 * @returns {Uint8Array}
 */
export const encodeEntry = (pk) => concat(u16(KEM_ID), pk);

/**
 * A relay key from its entry's bytes.
 * @param {Uint8Array} entry
 * @returns {RelayKey}
 * @throws {MteRelayError} `relay_key_invalid` for another KEM id, a wrong length or an invalid key
 */
export function relayKeyOfEntry(entry) {
  if (entry.length < 2 || ((entry[0] << 8) | entry[1]) !== KEM_ID) throw invalid('relay key entry of another KEM than X-Wing');
  if (entry.length !== ENTRY_SIZE) throw invalid(`relay key entry of ${entry.length} bytes (X-Wing entries have ${ENTRY_SIZE})`);
  const pk = entry.slice(2);
  if (!isValidEncapsulationKey(pk)) throw invalid('relay key entry holds an invalid X-Wing key');
  const id = sha256(entry);
  return { id, pk, fingerprint: formatFingerprint(id) };
}

/**
 * Parses `x-mte-relay-keys`: `,`-separated b64 entries (spaces around items trimmed), 1 to 8 of
 * them counted before skipping entries of other KEM ids, none twice, at least one X-Wing entry.
 * @param {string} value
 * @returns {RelayKey[]} the X-Wing keys, in the relay's order (current first)
 * @throws {MteRelayError} `relay_key_invalid`
 */
export function parseRelayKeys(value) {
  const items = value.split(',').map((item) => item.trim());
  if (items.length > MAX_RELAY_KEYS) throw invalid(`x-mte-relay-keys lists ${items.length} entries (at most ${MAX_RELAY_KEYS})`);
  /** @type {RelayKey[]} */
  const keys = [];
  const seen = [];
  for (const item of items) {
    let entry;
    try {
      entry = b64decode(item);
    } catch (cause) {
      throw invalid('x-mte-relay-keys holds an entry that is not base64url', cause);
    }
    if (item === '' || entry.length < 2) throw invalid('x-mte-relay-keys holds an empty or truncated entry');
    if (seen.some((e) => bytesEqual(e, entry))) throw invalid('x-mte-relay-keys lists an entry twice');
    seen.push(entry);
    if (((entry[0] << 8) | entry[1]) !== KEM_ID) continue; // another KEM: skipped
    keys.push(relayKeyOfEntry(entry));
  }
  if (keys.length === 0) throw invalid('x-mte-relay-keys offers no X-Wing key');
  return keys;
}

/**
 * The key to pair with (§13): the first offered key whose id is trusted; with nothing trusted
 * (first contact, trust on first use), the first offered key.
 * @param {RelayKey[]} offered the relay's keys, current first
 * @param {Uint8Array[]} trusted pinned or stored key ids (empty: first contact)
 * @param {string} origin the relay, for the message
 * @returns {RelayKey}
 * @throws {MteRelayError} `relay_key_not_trusted`, naming the trusted and the offered fingerprints
 */
export function chooseRelayKey(offered, trusted, origin = 'the relay') {
  if (trusted.length === 0) return offered[0];
  const key = offered.find((k) => trusted.some((t) => bytesEqual(t, k.id)));
  if (key) return key;
  const trustedFps = trusted.map(formatFingerprint);
  const offeredFps = offered.map((k) => k.fingerprint);
  throw new MteRelayError(
    'relay_key_not_trusted',
    `${origin} offers no trusted relay key: trusted ${trustedFps.join(', ')}; offered ${offeredFps.join(', ')}. ` +
      'Either the relay rotated its keys (update the pin or clear the stored trust) or something on the way replaced them; not pairing.',
    { fingerprint: trustedFps[0], trusted: trustedFps, offered: offeredFps },
  );
}
