/**
 * X-Wing (draft-connolly-cfrg-xwing-kem-06) through noble's `ml_kem768_x25519`.
 * The decapsulation key is the 32-byte seed (noble's hybrid secret key is that seed too).
 * @module
 */
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';

/** Seed (decapsulation key) length. */
export const SEED_SIZE = 32;
/** Encapsulation key length. */
export const EK_SIZE = 1216;
/** Ciphertext length. */
export const CT_SIZE = 1120;
/** Randomness consumed by one encapsulation. */
export const ESEED_SIZE = 64;

/**
 * Derives the encapsulation key from a seed.
 * @param {Uint8Array} seed 32 bytes
 * @returns {Uint8Array} ek, 1216 bytes
 */
export function encapsulationKey(seed) {
  return ml_kem768_x25519.keygen(seed).publicKey;
}

/**
 * Deterministic encapsulation (the relay's side; used by tests to replay vectors).
 * @param {Uint8Array} ek 1216 bytes
 * @param {Uint8Array} eseed 64 bytes of randomness
 * @returns {{ ct: Uint8Array, ss: Uint8Array }}
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
 */
export function decapsulate(seed, ct) {
  return ml_kem768_x25519.decapsulate(ct, seed);
}
