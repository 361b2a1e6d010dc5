import os

import pytest

from pqrelay import DecodeError
from pqrelay._stream import (
    CHUNK_SIZE,
    StreamOpener,
    encoded_len,
    plain_len,
    seal_sized,
    seal_streaming,
)

KEY = os.urandom(32)


def aad_fn(i, final):
    return b"aad" + bytes([i % 256, final])


def body(n):
    return bytes(i % 251 for i in range(n))


def open_all(data, expected=None, piece=7777):
    opener = StreamOpener(KEY, aad_fn, expected)
    out = []
    for i in range(0, len(data), piece):
        out.extend(opener.feed(data[i : i + piece]))
    opener.finish()
    return b"".join(out)


@pytest.mark.parametrize("n", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 300_000])
def test_stream_round_trip_sized(n):
    data = body(n)
    enc = b"".join(seal_sized(KEY, aad_fn, [data[:1000], data[1000:]], n))
    assert len(enc) == encoded_len(n)
    assert plain_len(len(enc)) == n
    assert open_all(enc, n) == data


def test_stream_round_trip_streaming_small_records():
    pieces = [b"a", b"bc", body(CHUNK_SIZE + 5), b"z"]
    enc = b"".join(seal_streaming(KEY, aad_fn, pieces))
    assert open_all(enc) == b"".join(pieces)


def test_stream_round_trip_empty_streaming():
    enc = b"".join(seal_streaming(KEY, aad_fn, []))
    assert len(enc) == 20 and open_all(enc) == b""


@pytest.mark.parametrize("e", [0, 19, 65557, 65556 + 19, 65556 + 20])
def test_stream_plain_len_rejects_invalid(e):
    with pytest.raises(DecodeError):
        plain_len(e)


def test_stream_encoded_len_examples():
    assert encoded_len(0) == 20
    assert encoded_len(65536) == 65556
    assert encoded_len(65537) == 65537 + 40


def test_stream_fails_to_decrypt_truncated():
    enc = b"".join(seal_sized(KEY, aad_fn, [body(100_000)], 100_000))
    with pytest.raises(DecodeError):
        open_all(enc[: CHUNK_SIZE + 20])
    with pytest.raises(DecodeError):
        open_all(enc[:-1])


def test_stream_fails_on_bytes_after_final():
    enc = b"".join(seal_sized(KEY, aad_fn, [b"abc"], 3))
    with pytest.raises(DecodeError):
        open_all(enc + b"\x00")


def test_stream_fails_on_flipped_bit_and_stays_failed():
    enc = bytearray(b"".join(seal_sized(KEY, aad_fn, [b"abc"], 3)))
    enc[5] ^= 0x80
    opener = StreamOpener(KEY, aad_fn)
    with pytest.raises(DecodeError):
        opener.feed(bytes(enc))
    with pytest.raises(DecodeError):
        opener.feed(b"")
    with pytest.raises(DecodeError):
        opener.finish()


def test_stream_fails_on_reserved_header_bits():
    enc = bytearray(b"".join(seal_sized(KEY, aad_fn, [b"abc"], 3)))
    enc[1] |= 0x02  # bit 17
    with pytest.raises(DecodeError):
        open_all(bytes(enc))


def test_stream_fails_on_reordered_records():
    a = b"".join(seal_streaming(KEY, aad_fn, [b"one", b"two"]))
    first, rest = a[: 4 + 3 + 16], a[4 + 3 + 16 :]
    with pytest.raises(DecodeError):
        open_all(rest + first)


def test_stream_fails_on_length_mismatch_in_sized_mode():
    enc = b"".join(seal_streaming(KEY, aad_fn, [b"abc"]))
    with pytest.raises(DecodeError):
        open_all(enc, expected=4)


def test_stream_sized_source_length_checked():
    with pytest.raises(ValueError):
        b"".join(seal_sized(KEY, aad_fn, [b"abcd"], 3))
    with pytest.raises(ValueError):
        b"".join(seal_sized(KEY, aad_fn, [b"ab"], 3))
