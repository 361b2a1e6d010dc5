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
    "validate_header",
    "validate_origin_form",
    "MAX_URL_SIZE",
    "MAX_EH_SIZE",
    "is_token",
    "encode_pairing_request",
    "parse_pairing_response",
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
#: §12: decoded URL at most 8 KiB; ``x-mte-relay-eh`` value at most 16 KiB.
MAX_URL_SIZE = 8192
MAX_EH_SIZE = 16384

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


def b64decode(text: str, kind: str = "invalid_header") -> bytes:
    """Strict inverse of :func:`b64encode` (§2).

    Rejects padding, characters outside the alphabet, impossible lengths and non-canonical
    encodings (non-zero unused trailing bits).
    """
    if not isinstance(text, str) or not _B64_ALPHABET.match(text):
        raise ProtocolError("invalid base64url", kind)
    if len(text) % 4 == 1:
        raise ProtocolError("invalid base64url length", kind)
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - alphabet checked above
        raise ProtocolError("invalid base64url", kind) from exc
    if b64encode(raw) != text:
        raise ProtocolError("non-canonical base64url", kind)
    return raw


# ---------------------------------------------------------------------------------------------
# §2 decimal numbers in headers


def parse_decimal(text: str, maximum: int = U64_MAX) -> int:
    """Decimal ASCII, no sign, no leading zeros (except ``0``), at most 20 digits."""
    if not _DECIMAL.match(text):
        raise ProtocolError("invalid decimal number", "invalid_header")
    value = int(text)
    if value > maximum:
        raise ProtocolError("number out of range", "invalid_header")
    return value


def format_decimal(value: int) -> str:
    if value < 0 or value > U64_MAX:
        raise ValueError("number out of range")
    return str(value)


# ---------------------------------------------------------------------------------------------
# §3, §4 tokens and x-mte-relay


@dataclass(frozen=True)
class RelayToken:
    """A client-id token (§3: ``b64(id || mac)``, 64 characters): opaque, except that its
    first 16 decoded bytes are the client id."""

    token: str
    client_id: bytes = field(repr=False)

    @classmethod
    def parse(cls, token: str) -> RelayToken:
        raw = b64decode(token)
        if len(raw) != 48:
            raise ProtocolError("client id token is not 48 bytes", "invalid_header")
        return cls(token=token, client_id=raw[:16])


def _version(text: str) -> None:
    if parse_decimal(text, 2**32) != PROTOCOL_VERSION:
        raise ProtocolError("unsupported protocol version in x-mte-relay", "unsupported_version")


def parse_discovery_header(value: str | None) -> RelayToken:
    """``x-mte-relay: 1.<token>`` on discovery and pairing answers (§4, §5)."""
    if value is None:
        raise ProtocolError("missing x-mte-relay header", "invalid_header")
    fields = value.split(".")
    if len(fields) != 2:
        raise ProtocolError("malformed x-mte-relay header", "invalid_header")
    _version(fields[0])
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
        raise ProtocolError("missing x-mte-relay header", "invalid_header")
    fields = value.split(".")
    if len(fields) != 5:
        if len(fields) > 1 and _DECIMAL.match(fields[0]) and fields[0] != str(PROTOCOL_VERSION):
            _version(fields[0])
        raise ProtocolError("malformed x-mte-relay header", "invalid_header")
    version, token, pid_text, counter_text, flags_text = fields
    _version(version)
    parsed_token = RelayToken.parse(token)
    pid = b64decode(pid_text)
    if len(pid) != 16:
        raise ProtocolError("pair id must be 16 bytes", "invalid_header")
    counter = parse_decimal(counter_text)
    flags = parse_decimal(flags_text, maximum=255)
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError("unknown flag bits in x-mte-relay", "invalid_header")
    if not flags & FLAG_HEADERS:
        raise ProtocolError("flag headers must be set in version 1", "invalid_header")
    return ExchangeHeader(parsed_token, pid, counter, flags)


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
        raise ProtocolError("missing x-mte-relay-info header", "invalid_header")
    items: dict[str, str] = {}
    for part in value.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep:
            raise ProtocolError("malformed x-mte-relay-info entry", "invalid_header")
        items[key.strip()] = val.strip()
    try:
        versions = tuple(parse_decimal(v.strip(), 2**32) for v in items["versions"].split(","))
        max_pairs = parse_decimal(items["max-pairs"], 2**32)
        chunk_size = parse_decimal(items["chunk-size"], 2**32)
        max_skip = parse_decimal(items["max-skip"])
    except KeyError as exc:
        raise ProtocolError(f"x-mte-relay-info lacks {exc.args[0]}", "invalid_header") from None
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
    """The fixed-layout AAD of §7 (all fields always present).

    ``target`` is the request-target as sent; it is bound only into the request headers part
    of a request whose URL is not sealed, and is empty everywhere else.
    """
    if len(client_id) != 16 or len(pid) != 16:
        raise ValueError("client id and pair id are 16 bytes")
    if direction != DIR_REQUEST or part != PART_HEADERS or flags & FLAG_URL:
        target = ""
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


_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def validate_header(name: str, value: str, request: bool) -> None:
    """A decoded header: lowercase token name, value without CR, LF, NUL or other controls
    (tab allowed); in requests, none of the names the relay refuses (§8.2)."""
    if not is_token(name) or name != name.lower():
        raise ProtocolError(f"invalid header name {name!r}", "forbidden_header")
    if _BAD_VALUE.search(value):
        raise ProtocolError(f"invalid value for header {name}", "forbidden_header")
    if request and (name in FORBIDDEN_SEALED_HEADERS or name.startswith("x-mte-")):
        raise ProtocolError(f"header {name} may not be sealed", "forbidden_header")


def decode_header_list(plaintext: bytes, request: bool = False) -> list[tuple[str, str]]:
    """Parse and validate a sealed header list (§8.2)."""
    try:
        data = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError("sealed headers are not UTF-8 JSON", "decode_failure") from exc
    if not isinstance(data, list):
        raise ProtocolError("sealed headers are not a JSON array", "decode_failure")
    out: list[tuple[str, str]] = []
    for item in data:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
        ):
            raise ProtocolError(
                "sealed header entry is not a [name, value] string pair", "decode_failure"
            )
        out.append((item[0], item[1]))
    for name, value in out:
        validate_header(name, value, request)
    return out


def validate_origin_form(url: str) -> None:
    """§8.2: starts with a single ``/``, no scheme or authority, no ``\\``, no control
    characters or spaces, no ``#``, ASCII, at most 8 KiB."""
    if (
        not url.startswith("/")
        or url.startswith("//")
        or len(url.encode("utf-8")) > MAX_URL_SIZE
        or any(c == "\\" or c == "#" or ord(c) <= 0x20 or ord(c) >= 0x7F for c in url)
    ):
        raise ProtocolError("request target is not origin-form", "invalid_url")


# ---------------------------------------------------------------------------------------------
# §5 pairing bodies (client side)


def encode_pairing_request(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """``{"pairs":[{"id":b64(pid),"ek":b64(ek)}, ...]}``."""
    return json.dumps(
        {"pairs": [{"id": b64encode(pid), "ek": b64encode(ek)} for pid, ek in pairs]},
        separators=(",", ":"),
    ).encode("ascii")


def parse_pairing_response(body: bytes, pids: list[bytes]) -> list[bytes]:
    """The relay's pairing answer: exactly ``{"pairs":[{"id","ct"}, ...]}`` with the request's
    pair ids in the same order and 1120-byte ciphertexts. Returns the ciphertexts."""
    from ._exceptions import PairingError

    def no_duplicates(items: list[tuple[str, object]]) -> dict[str, object]:
        out = dict(items)
        if len(out) != len(items):
            raise PairingError("duplicate key in pairing answer")
        return out

    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, PairingError):  # pragma: no cover - PairingError is no ValueError
            raise
        raise PairingError("pairing answer is not JSON") from exc
    if not isinstance(doc, dict) or set(doc) != {"pairs"} or not isinstance(doc["pairs"], list):
        raise PairingError("pairing answer is not {\"pairs\": [...]}")
    entries = doc["pairs"]
    if len(entries) != len(pids):
        raise PairingError("pairing answer has the wrong number of pairs")
    cts = []
    for pid, entry in zip(pids, entries):
        if not isinstance(entry, dict) or set(entry) != {"id", "ct"}:
            raise PairingError("pairing answer entry is not {\"id\", \"ct\"}")
        if not isinstance(entry["id"], str) or not isinstance(entry["ct"], str):
            raise PairingError("pairing answer entry values are not strings")
        try:
            got_pid = b64decode(entry["id"])
            ct = b64decode(entry["ct"])
        except ProtocolError as exc:
            raise PairingError(f"pairing answer: {exc}") from None
        if got_pid != pid:
            raise PairingError("pairing answer ids do not match the request")
        if len(ct) != 1120:
            raise PairingError("pairing answer ciphertext is not 1120 bytes")
        cts.append(ct)
    return cts
