"""Body framing (PROTOCOL.md §9): the STREAM construction over AES-256-GCM.

``record = header(u32) || AES-256-GCM(key, nonce(3, final, i), chunk, aad(3, i, final))``
with ``header = (final << 31) | len(chunk)``. The encoder and decoder know nothing about
HTTP; they get the key and a function producing the AAD of record ``i``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Iterator

from ._codec import PART_BODY, nonce
from ._exceptions import DecodeError
from ._keys import TAG_SIZE, open_, seal

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "RECORD_OVERHEAD",
    "MAX_RECORD_SIZE",
    "records",
    "encoded_len",
    "plain_len",
    "AadFn",
    "StreamSealer",
    "seal_sized",
    "seal_streaming",
    "StreamOpener",
]

CHUNK_SIZE = 65536
HEADER_SIZE = 4
RECORD_OVERHEAD = HEADER_SIZE + TAG_SIZE
MAX_RECORD_SIZE = HEADER_SIZE + CHUNK_SIZE + TAG_SIZE

_FINAL_BIT = 1 << 31
_RESERVED_BITS = 0x7FFE0000  # bits 17..30
_LEN_MASK = 0x0001FFFF

#: ``aad_fn(index, final) -> bytes``
AadFn = Callable[[int, bool], bytes]


def records(plain_length: int) -> int:
    """``records(L) = max(1, ceil(L / 65536))``."""
    if plain_length < 0:
        raise ValueError("negative length")
    return max(1, -(-plain_length // CHUNK_SIZE))


def encoded_len(plain_length: int) -> int:
    """``encoded_len(L) = L + 20 * records(L)`` (sized mode)."""
    return plain_length + RECORD_OVERHEAD * records(plain_length)


def plain_len(encoded_length: int) -> int:
    """Inverse of :func:`encoded_len`; raises :class:`DecodeError` if ``E`` is not valid."""
    if encoded_length < 0:
        raise DecodeError("invalid encoded length", "invalid_length")
    r = max(1, -(-encoded_length // (CHUNK_SIZE + RECORD_OVERHEAD)))
    length = encoded_length - RECORD_OVERHEAD * r
    if length < 0 or encoded_len(length) != encoded_length:
        raise DecodeError("invalid encoded length", "invalid_length")
    return length


class StreamSealer:
    """Seals records one by one with indexes 0, 1, ...; exactly one final record."""

    def __init__(self, key: bytes, aad_fn: AadFn) -> None:
        self._key = key
        self._aad_fn = aad_fn
        self._index = 0
        self._finished = False

    def seal(self, chunk: bytes, final: bool) -> bytes:
        if self._finished:
            raise ValueError("stream already finished")
        if len(chunk) > CHUNK_SIZE or (not final and not chunk):
            raise ValueError("chunk length out of range")
        i = self._index
        header = (_FINAL_BIT if final else 0) | len(chunk)
        body = seal(self._key, nonce(PART_BODY, final, i), chunk, self._aad_fn(i, final))
        self._index += 1
        self._finished = final
        return struct.pack(">I", header) + body


def _rechunk(source: Iterable[bytes]) -> Iterator[bytes]:
    """Re-cut arbitrary pieces into pieces of exactly CHUNK_SIZE (the last may be shorter)."""
    buf = bytearray()
    for piece in source:
        if not piece:
            continue
        buf += piece
        while len(buf) >= CHUNK_SIZE:
            yield bytes(buf[:CHUNK_SIZE])
            del buf[:CHUNK_SIZE]
    if buf:
        yield bytes(buf)


def seal_sized(
    key: bytes, aad_fn: AadFn, source: Iterable[bytes], plain_length: int
) -> Iterator[bytes]:
    """Sized mode: full records, the last one final; yields exactly ``encoded_len(L)`` bytes.

    Raises ``ValueError`` if ``source`` does not hold exactly ``plain_length`` bytes.
    """
    sealer = StreamSealer(key, aad_fn)
    total_records = records(plain_length)
    sent = 0
    emitted = 0
    for chunk in _rechunk(source):
        sent += len(chunk)
        if sent > plain_length:
            raise ValueError("request body longer than its declared length")
        emitted += 1
        yield sealer.seal(chunk, final=emitted == total_records)
    if sent != plain_length:
        raise ValueError("request body shorter than its declared length")
    if plain_length == 0:
        yield sealer.seal(b"", final=True)


def seal_streaming(key: bytes, aad_fn: AadFn, source: Iterable[bytes]) -> Iterator[bytes]:
    """Streaming mode: one record per piece the source yields (split at CHUNK_SIZE), then a
    final record. One piece is held back so that the last data record can be the final one."""
    sealer = StreamSealer(key, aad_fn)
    pending: bytes | None = None
    for piece in source:
        for start in range(0, len(piece), CHUNK_SIZE):
            chunk = bytes(piece[start : start + CHUNK_SIZE])
            if pending is not None:
                yield sealer.seal(pending, final=False)
            pending = chunk
    yield sealer.seal(pending if pending is not None else b"", final=True)


class StreamOpener:
    """Incremental STREAM decoder: :meth:`feed` bytes as they arrive, then :meth:`finish`.

    Buffers at most one record. After any failure it refuses all further input.
    ``expected_length`` (sized mode) makes :meth:`finish` check the decoded total.
    """

    def __init__(self, key: bytes, aad_fn: AadFn, expected_length: int | None = None) -> None:
        self._key = key
        self._aad_fn = aad_fn
        self._expected = expected_length
        self._buf = bytearray()
        self._index = 0
        self._total = 0
        self._done = False
        self._failed = False

    @property
    def done(self) -> bool:
        """True once the final record opened."""
        return self._done

    def _fail(self, message: str, kind: str = "framing_failure") -> DecodeError:
        self._failed = True
        self._buf.clear()
        return DecodeError(message, kind)

    def feed(self, data: bytes) -> list[bytes]:
        """Returns the plaintext chunks completed by ``data`` (possibly none)."""
        if self._failed:
            raise DecodeError("stream already failed")
        if not data:
            return []
        if self._done:
            raise self._fail("bytes after the final record")
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= HEADER_SIZE:
            (header,) = struct.unpack_from(">I", self._buf, 0)
            final = bool(header & _FINAL_BIT)
            length = header & _LEN_MASK
            if header & _RESERVED_BITS or length > CHUNK_SIZE:
                raise self._fail("invalid record header")
            if not final and length == 0:
                raise self._fail("empty non-final record")
            size = HEADER_SIZE + length + TAG_SIZE
            if len(self._buf) < size:
                break
            sealed = bytes(self._buf[HEADER_SIZE:size])
            del self._buf[:size]
            i = self._index
            try:
                chunk = open_(self._key, nonce(PART_BODY, final, i), sealed, self._aad_fn(i, final))
            except DecodeError:
                raise self._fail("record did not open", "decode_failure") from None
            self._index += 1
            self._total += len(chunk)
            if self._expected is not None and self._total > self._expected:
                raise self._fail("body longer than its declared length")
            if chunk:
                out.append(chunk)
            if final:
                self._done = True
                if self._buf:
                    raise self._fail("bytes after the final record")
                break
        return out

    def finish(self) -> None:
        """Call at end of input: raises if the final record never came (truncation)."""
        if self._failed:
            raise DecodeError("stream already failed")
        if not self._done:
            raise self._fail("truncated body")
        if self._expected is not None and self._total != self._expected:
            raise self._fail("body length does not match its declared length")
