// STREAM framing round trips with random transport splits, and the decoder's failure modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytesSource, recordPlaintexts, streamSource } from '../src/_body.js';
import { concat } from '../src/_bytes.js';
import { importKey } from '../src/_seal.js';
import { CHUNK_SIZE, encodedLength, plainLength, StreamOpener, StreamSealer } from '../src/_stream.js';

const body = (n) => Uint8Array.from({ length: n }, (_, i) => i % 251);
const aadFor = (index, final) => Uint8Array.of(index & 0xff, final ? 1 : 0);
const key = await importKey(new Uint8Array(32).fill(3));

async function encode(source) {
  const sealer = new StreamSealer(key, aadFor);
  const records = [];
  for await (const { chunk, final } of recordPlaintexts(source)) records.push(await sealer.seal(chunk, final));
  return concat(...records);
}

function randomSplits(bytes, rng) {
  const pieces = [];
  for (let o = 0; o < bytes.length; ) {
    const n = 1 + Math.floor(rng() * 70000);
    pieces.push(bytes.subarray(o, o + n));
    o += n;
  }
  return pieces;
}

function rngFrom(seed) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

async function decode(encoded, pieces, options) {
  const opener = new StreamOpener(key, aadFor, options);
  const out = [];
  for (const p of pieces) out.push(...(await opener.push(p)));
  opener.finish();
  return concat(...out);
}

for (const n of [0, 1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 200_000]) {
  test(`stream_round_trip_sized_${n}`, async () => {
    const plain = body(n);
    const encoded = await encode(bytesSource(plain));
    assert.equal(encoded.length, encodedLength(n));
    assert.equal(plainLength(encoded.length), n);
    for (let seed = 1; seed <= 3; seed++) {
      const decoded = await decode(encoded, randomSplits(encoded, rngFrom(seed * 7919 + n)), { expectedLength: n });
      assert.deepEqual(decoded, plain);
    }
  });
}

test('stream_round_trip_streaming_random_pieces', async () => {
  const rng = rngFrom(42);
  const plain = body(300_000);
  const pieces = randomSplits(plain, rng);
  const source = streamSource(new ReadableStream({ start(c) { for (const p of pieces) c.enqueue(p); c.close(); } }));
  const encoded = await encode(source);
  const decoded = await decode(encoded, randomSplits(encoded, rng), {});
  assert.deepEqual(decoded, plain);
});

test('stream_encoded_length_inverse_rejects_impossible_lengths', () => {
  for (const bad of [0, 19, CHUNK_SIZE + 20 + 1, CHUNK_SIZE + 20 + 19]) assert.equal(plainLength(bad), null);
  for (const n of [0, 5, CHUNK_SIZE, CHUNK_SIZE + 1, 10 * CHUNK_SIZE]) assert.equal(plainLength(encodedLength(n)), n);
});

test('stream_fails_to_decrypt_truncated', async () => {
  const encoded = await encode(bytesSource(body(CHUNK_SIZE + 10)));
  const cut = encoded.subarray(0, CHUNK_SIZE + 20);
  await assert.rejects(decode(cut, [cut], {}), { code: 'framing_failed' });
});

test('stream_fails_on_trailing_bytes', async () => {
  const encoded = await encode(bytesSource(body(10)));
  const extended = concat(encoded, Uint8Array.of(0));
  await assert.rejects(decode(extended, [extended], {}), { code: 'framing_failed' });
});

test('stream_fails_on_flipped_bit_and_stays_failed', async () => {
  const encoded = await encode(bytesSource(body(100)));
  encoded[10] ^= 1;
  const opener = new StreamOpener(key, aadFor, {});
  await assert.rejects(opener.push(encoded), { code: 'decode_failed' });
  await assert.rejects(opener.push(new Uint8Array(0)), { code: 'decode_failed' });
  assert.throws(() => opener.finish(), { code: 'decode_failed' });
});

test('stream_fails_on_reserved_header_bits', async () => {
  const encoded = await encode(bytesSource(body(5)));
  encoded[1] |= 0x02; // bit 17
  await assert.rejects(decode(encoded, [encoded], {}), { code: 'framing_failed' });
});

test('stream_sized_mode_rejects_short_non_final_records', async () => {
  const source = streamSource(new ReadableStream({ start(c) { c.enqueue(body(10)); c.enqueue(body(10)); c.close(); } }));
  const encoded = await encode(source);
  await assert.rejects(decode(encoded, [encoded], { sized: true }), { code: 'framing_failed' });
  assert.equal((await decode(encoded, [encoded], {})).length, 20);
});

test('stream_sized_mode_checks_total_length', async () => {
  const encoded = await encode(bytesSource(body(10)));
  await assert.rejects(decode(encoded, [encoded], { expectedLength: 11 }), { code: 'framing_failed' });
  await assert.rejects(decode(encoded, [encoded], { expectedLength: 9 }), { code: 'framing_failed' });
});

test('stream_sized_source_must_match_declared_size', async () => {
  const lying = { size: 5, replayable: true, async *chunks() { yield body(6); } };
  await assert.rejects(encode(lying), RangeError);
});
