"""Wire encodings of PROTOCOL.md: base64url (§2), decimal numbers (§2), the ``x-mte-relay``
and ``x-mte-relay-info`` headers (§4, §8.1), nonces and AADs (§7), sealed header lists (§8.2).

Nothing here does cryptography; every parser raises :class:`ProtocolError` on bad input and
never trusts peer-provided lengths.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
from dataclasses import dataclass, field

from ._exceptions import ProtocolError

__all__ = [
    "PROTOCOL_VERSION",
    "LABEL",
    "DIR_REQUEST",
    "DIR_RESPONSE",
    "PART_URL",
    "PART_HEADERS",
    "PART_BODY",
    "FLAG_URL",
    "FLAG_HEADERS",
    "FLAG_BODY",
    "FLAG_STREAMING",
    "KNOWN_FLAGS",
    "FORBIDDEN_SEALED_HEADERS",
    "b64encode",
    "b64decode",
    "parse_decimal",
    "format_decimal",
    "RelayToken",
    "parse_discovery_header",
    "ExchangeHeader",
    "parse_exchange_header",
    "RelayInfo",
    "parse_info",
    "nonce",
    "aad",
    "encode_header_list",
    "decode_header_list",
    "is_token",
]

PROTOCOL_VERSION = 1
LABEL = b"pqrelay/1"

DIR_REQUEST = 1
DIR_RESPONSE = 2

PART_URL = 1
PART_HEADERS = 2
PART_BODY = 3

FLAG_URL = 0x01
FLAG_HEADERS = 0x02
FLAG_BODY = 0x04
FLAG_STREAMING = 0x08
KNOWN_FLAGS = FLAG_URL | FLAG_HEADERS | FLAG_BODY | FLAG_STREAMING

U64_MAX = 2**64 - 1

#: Names the relay refuses among sealed headers (§8.2), besides anything starting ``x-mte-``.
FORBIDDEN_SEALED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)

_B64_ALPHABET = re.compile(r"\A[A-Za-z0-9_-]*\Z")
_DECIMAL = re.compile(r"\A(?:0|[1-9][0-9]{0,19})\Z")
# RFC 9110 token: 1*tchar
_TOKEN = re.compile(r"\A[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


# ---------------------------------------------------------------------------------------------
# §2 base64url without padding, strict


def b64encode(data: bytes) -> str:
    """``b64(x)``: base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """Strict inverse of :func:`b64encode` (§2).

    Rejects padding, characters outside the alphabet, impossible lengths and non-canonical
    encodings (non-zero unused trailing bits).
    """
    if not isinstance(text, str) or not _B64_ALPHABET.match(text):
        raise ProtocolError("invalid base64url")
    if len(text) % 4 == 1:
        raise ProtocolError("invalid base64url length")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked above
        raise ProtocolError("invalid base64url") from exc
    if b64encode(raw) != text:
        raise ProtocolError("non-canonical base64url")
    return raw


# ---------------------------------------------------------------------------------------------
# §2 decimal numbers in headers


def parse_decimal(text: str, maximum: int = U64_MAX) -> int:
    """Decimal ASCII, no sign, no leading zeros (except ``0``), at most 20 digits."""
    if not _DECIMAL.match(text):
        raise ProtocolError("invalid decimal number")
    value = int(text)
    if value > maximum:
        raise ProtocolError("number out of range")
    return value


def format_decimal(value: int) -> str:
    if value < 0 or value > U64_MAX:
        raise ValueError("number out of range")
    return str(value)


# ---------------------------------------------------------------------------------------------
# §3, §4 tokens and x-mte-relay


@dataclass(frozen=True)
class RelayToken:
    """A client-id token: opaque, except that its first 16 decoded bytes are the client id."""

    token: str
    client_id: bytes = field(repr=False)

    @classmethod
    def parse(cls, token: str) -> RelayToken:
        raw = b64decode(token)
        if len(raw) < 16:
            raise ProtocolError("client id token too short")
        return cls(token=token, client_id=raw[:16])


def parse_discovery_header(value: str | None) -> RelayToken:
    """``x-mte-relay: 1.<token>`` on discovery and pairing answers (§4, §5)."""
    if value is None:
        raise ProtocolError("missing x-mte-relay header")
    fields = value.strip().split(".")
    if len(fields) != 2:
        raise ProtocolError("malformed x-mte-relay header")
    if fields[0] != str(PROTOCOL_VERSION):
        raise ProtocolError("unsupported protocol version in x-mte-relay")
    return RelayToken.parse(fields[1])


@dataclass(frozen=True)
class ExchangeHeader:
    """``x-mte-relay: 1.<token>.<b64(pid)>.<counter>.<flags>`` (§8.1)."""

    token: RelayToken
    pid: bytes
    counter: int
    flags: int

    def encode(self) -> str:
        return ".".join(
            [
                str(PROTOCOL_VERSION),
                self.token.token,
                b64encode(self.pid),
                format_decimal(self.counter),
                format_decimal(self.flags),
            ]
        )


def parse_exchange_header(value: str | None) -> ExchangeHeader:
    if value is None:
        raise ProtocolError("missing x-mte-relay header")
    fields = value.strip().split(".")
    if len(fields) != 5:
        raise ProtocolError("malformed x-mte-relay header")
    version, token, pid_text, counter_text, flags_text = fields
    if version != str(PROTOCOL_VERSION):
        raise ProtocolError("unsupported protocol version in x-mte-relay")
    pid = b64decode(pid_text)
    if len(pid) != 16:
        raise ProtocolError("pair id must be 16 bytes")
    counter = parse_decimal(counter_text)
    flags = parse_decimal(flags_text, maximum=255)
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError("unknown flag bits in x-mte-relay")
    return ExchangeHeader(RelayToken.parse(token), pid, counter, flags)


@dataclass(frozen=True)
class RelayInfo:
    """Parsed ``x-mte-relay-info`` (§4)."""

    versions: tuple[int, ...]
    max_pairs: int
    chunk_size: int
    max_skip: int
    extra: dict[str, str] = field(default_factory=dict)


def parse_info(value: str | None) -> RelayInfo:
    """``versions=1;max-pairs=<N>;chunk-size=65536;max-skip=16``; unknown keys ignored."""
    if value is None:
        raise ProtocolError("missing x-mte-relay-info header")
    items: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise ProtocolError("malformed x-mte-relay-info entry")
        items[key.strip()] = val.strip()
    try:
        versions = tuple(parse_decimal(v.strip(), 2**32) for v in items["versions"].split(","))
        max_pairs = parse_decimal(items["max-pairs"], 2**32)
        chunk_size = parse_decimal(items["chunk-size"], 2**32)
        max_skip = parse_decimal(items["max-skip"])
    except KeyError as exc:
        raise ProtocolError(f"x-mte-relay-info lacks {exc.args[0]}") from None
    known = {"versions", "max-pairs", "chunk-size", "max-skip"}
    extra = {k: v for k, v in items.items() if k not in known}
    return RelayInfo(versions, max_pairs, chunk_size, max_skip, extra)


# ---------------------------------------------------------------------------------------------
# §7 nonce and AAD


def nonce(part: int, final: bool, index: int) -> bytes:
    """``part(u8) || final(u8) || 0x00 0x00 || index(u64)``."""
    return struct.pack(">BBHQ", part, 1 if final else 0, 0, index)


def aad(
    *,
    direction: int,
    part: int,
    flags: int,
    client_id: bytes,
    pid: bytes,
    counter: int,
    index: int,
    final: bool,
    status: int,
    method: str,
    target: str,
) -> bytes:
    """The fixed-layout AAD of §7 (all fields always present)."""
    if len(client_id) != 16 or len(pid) != 16:
        raise ValueError("client id and pair id are 16 bytes")
    method_b = method.encode("ascii")
    target_b = target.encode("ascii") if target else b""
    if len(method_b) > 0xFF or len(target_b) > 0xFFFF:
        raise ValueError("method or target too long for the AAD")
    return b"".join(
        [
            LABEL,
            struct.pack(">BBB", direction, part, flags),
            client_id,
            pid,
            struct.pack(">QQBH", counter, index, 1 if final else 0, status),
            struct.pack(">B", len(method_b)),
            method_b,
            struct.pack(">H", len(target_b)),
            target_b,
        ]
    )


# ---------------------------------------------------------------------------------------------
# §8.2 sealed header lists


def is_token(name: str) -> bool:
    return bool(_TOKEN.match(name))


def encode_header_list(headers: list[tuple[str, str]]) -> bytes:
    """UTF-8 JSON array of ``[name, value]`` pairs, names lowercase, order kept."""
    return json.dumps(
        [[name.lower(), value] for name, value in headers],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


def decode_header_list(plaintext: bytes) -> list[tuple[str, str]]:
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("sealed headers are not UTF-8 JSON") from exc
    if not isinstance(data, list):
        raise ProtocolError("sealed headers are not a JSON array")
    out: list[tuple[str, str]] = []
    for item in data:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
        ):
            raise ProtocolError("sealed header entry is not a [name, value] string pair")
        out.append((item[0], item[1]))
    return out
