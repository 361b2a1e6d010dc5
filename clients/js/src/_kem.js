/**
 * X-Wing (draft-connolly-cfrg-xwing-kem-06) through noble's `ml_kem768_x25519`.
 * The decapsulation key is the 32-byte seed (noble's hybrid secret key is that seed too).
 * noble refuses, by throwing, an `ek` whose ML-KEM part fails the FIPS 203 modulus check and any
 * low-order X25519 point (in an `ek` or a `ct`), which covers the checks of PROTOCOL.md §2.
 * @module
 */
import { x25519 } from '@noble/curves/ed25519.js';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';

/** HPKE KEM id of X-Wing. */
export const KEM_ID = 0x647a;
/** Seed (decapsulation key) length. */
export const SEED_SIZE = 32;
/** Encapsulation key length. */
export const EK_SIZE = 1216;
/** Ciphertext length. */
export const CT_SIZE = 1120;
/** Randomness consumed by one encapsulation. */
export const ESEED_SIZE = 64;
/** Length of the ML-KEM-768 part of an `ek` (the X25519 part follows). */
const MLKEM_EK_SIZE = 1184;
/** A fixed X25519 scalar for the low-order probe (any scalar would do). */
const PROBE_SCALAR = /* @__PURE__ */ new Uint8Array(32).fill(0x5a);

/**
 * Derives the encapsulation key from a seed.
 * @param {Uint8Array} seed 32 bytes
 * @returns {Uint8Array} ek, 1216 bytes
 */
export function encapsulationKey(seed) {
  return ml_kem768_x25519.keygen(seed).publicKey;
}

/**
 * Whether `ek` is a valid X-Wing encapsulation key (§2): 1216 bytes, the ML-KEM part passes the
 * modulus check, the X25519 part is not a low-order point. Cheaper than a whole encapsulation.
 * @param {Uint8Array} ek
 * @returns {boolean}
 */
export function isValidEncapsulationKey(ek) {
  if (ek.length !== EK_SIZE) return false;
  try {
    ml_kem768.encapsulate(ek.subarray(0, MLKEM_EK_SIZE), new Uint8Array(32));
    x25519.getSharedSecret(PROBE_SCALAR, ek.subarray(MLKEM_EK_SIZE));
    return true;
  } catch {
    return false;
  }
}

/**
 * Deterministic encapsulation with 64 bytes of randomness (fresh random bytes outside tests).
 * @param {Uint8Array} ek 1216 bytes
 * @param {Uint8Array} eseed 64 bytes of randomness
 * @returns {{ ct: Uint8Array, ss: Uint8Array }}
 * @throws {Error} for an invalid `ek`
 */
export function encapsulate(ek, eseed) {
  const { cipherText, sharedSecret } = ml_kem768_x25519.encapsulate(ek, eseed);
  return { ct: cipherText, ss: sharedSecret };
}

/**
 * Decapsulation.
 * @param {Uint8Array} seed the 32-byte decapsulation key
 * @param {Uint8Array} ct 1120 bytes
 * @returns {Uint8Array} the 32-byte shared secret
 * @throws {Error} when the X25519 part of `ct` is a low-order point (all-zero share)
 */
export function decapsulate(seed, ct) {
  return ml_kem768_x25519.decapsulate(ct, seed);
}
