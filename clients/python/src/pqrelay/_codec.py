"""Wire encodings of PROTOCOL.md (version 2): base64url (§2), decimal numbers (§2), the
``x-mte-relay`` and ``x-mte-relay-info`` headers (§5, §9.1), nonces and AADs (§8), sealed header
lists and URLs (§9.2), the pairing bodies (§6).

Nothing here does cryptography; every parser raises :class:`ProtocolError` on bad input and
never trusts peer-provided lengths.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import urllib.parse
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
    "FLAG_RETRY",
    "KNOWN_FLAGS",
    "FORBIDDEN_SEALED_HEADERS",
    "b64encode",
    "b64decode",
    "parse_decimal",
    "format_decimal",
    "RelayToken",
    "parse_relay_header",
    "parse_discovery_header",
    "ExchangeHeader",
    "parse_exchange_header",
    "MAX_PAIRS_PER_REQUEST",
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
    "is_forbidden_request_header",
    "encode_pairing_request",
    "PairingResponse",
    "parse_pairing_response",
]

PROTOCOL_VERSION = 2
LABEL = b"pqrelay/2"

DIR_REQUEST = 1
DIR_RESPONSE = 2

PART_URL = 1
PART_HEADERS = 2
PART_BODY = 3

FLAG_URL = 0x01
FLAG_HEADERS = 0x02
FLAG_BODY = 0x04
FLAG_STREAMING = 0x08
FLAG_RETRY = 0x10
KNOWN_FLAGS = FLAG_URL | FLAG_HEADERS | FLAG_BODY | FLAG_STREAMING | FLAG_RETRY

U64_MAX = 2**64 - 1
#: §15: decoded URL at most 8 KiB; ``x-mte-relay-eh`` value at most 16 KiB.
MAX_URL_SIZE = 8192
MAX_EH_SIZE = 16384
#: §6: the pair count is one byte of the transcript.
MAX_PAIRS_PER_REQUEST = 255
#: §5: the largest ``max-pairs`` a client accepts in ``x-mte-relay-info``.
MAX_MAX_PAIRS = 255
#: Version 2 fixes these (§5): a relay announcing others is refused.
CHUNK_SIZE = 65536
MAX_SKIP = 16

#: Names the relay refuses among sealed request headers (§9.2), besides anything starting
#: ``x-forwarded-`` or ``x-mte-``.
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
        "expect",
        "forwarded",
        "x-real-ip",
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
        """A token that is not 64 characters of strict b64 is ``invalid_client_id`` (566)."""
        if len(token) != 64:
            raise ProtocolError("client id token is not 64 characters", "invalid_client_id")
        raw = b64decode(token, "invalid_client_id")
        return cls(token=token, client_id=raw[:16])


@dataclass(frozen=True)
class ExchangeHeader:
    """``x-mte-relay: 2.<token>.<b64(pid)>.<counter>.<flags>`` (§9.1)."""

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


def parse_relay_header(value: str | None, request: bool = True) -> RelayToken | ExchangeHeader:
    """Parses an ``x-mte-relay`` value (§9.1), in the order the relay checks it: version
    (another well-formed version is ``unsupported_version``), ``2`` alone or an empty token
    (``client_id_missing``), the field count, pid, counter and flags (``invalid_header``; a
    response may not carry ``retry``), then the token (``invalid_client_id``).

    Returns the token of a discovery/pairing header (``2.<token>``) or an
    :class:`ExchangeHeader`.
    """
    if value is None:
        raise ProtocolError("missing x-mte-relay header", "client_id_missing")
    fields = value.split(".")
    if not _DECIMAL.match(fields[0]):
        raise ProtocolError("malformed x-mte-relay version", "invalid_header")
    if int(fields[0]) != PROTOCOL_VERSION:
        raise ProtocolError("unsupported protocol version in x-mte-relay", "unsupported_version")
    if len(fields) == 1 or (len(fields) == 2 and not fields[1]):
        raise ProtocolError("x-mte-relay carries no client id", "client_id_missing")
    if len(fields) == 2:
        return RelayToken.parse(fields[1])
    if len(fields) != 5:
        raise ProtocolError("malformed x-mte-relay header (field count)", "invalid_header")
    _, token, pid_text, counter_text, flags_text = fields
    if not token:
        raise ProtocolError("x-mte-relay carries no client id", "client_id_missing")
    if len(pid_text) != 22:
        raise ProtocolError("pair id must be 16 bytes", "invalid_header")
    pid = b64decode(pid_text)
    counter = parse_decimal(counter_text)
    flags = parse_decimal(flags_text, maximum=255)
    if flags & ~KNOWN_FLAGS:
        raise ProtocolError("unknown flag bits in x-mte-relay", "invalid_header")
    if not flags & FLAG_HEADERS:
        raise ProtocolError("flag headers must be set", "invalid_header")
    if not request and flags & FLAG_RETRY:
        raise ProtocolError("flag retry on a response", "invalid_header")
    return ExchangeHeader(RelayToken.parse(token), pid, counter, flags)


def parse_discovery_header(value: str | None) -> RelayToken:
    """``x-mte-relay: 2.<token>`` on discovery and pairing answers (§5, §6)."""
    parsed = parse_relay_header(value, request=False)
    if not isinstance(parsed, RelayToken):
        raise ProtocolError("exchange fields on a discovery header", "invalid_header")
    return parsed


def parse_exchange_header(value: str | None, request: bool = False) -> ExchangeHeader:
    """``x-mte-relay`` of an exchange message (a response unless ``request``)."""
    parsed = parse_relay_header(value, request=request)
    if not isinstance(parsed, ExchangeHeader):
        raise ProtocolError("malformed x-mte-relay header (field count)", "invalid_header")
    return parsed


@dataclass(frozen=True)
class RelayInfo:
    """Parsed ``x-mte-relay-info`` (§5)."""

    versions: tuple[int, ...]
    max_pairs: int
    chunk_size: int
    max_skip: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pairs_per_request(self) -> int:
        """How many pairs one pairing request may hold: ``max-pairs``, at most 255."""
        return min(self.max_pairs, MAX_PAIRS_PER_REQUEST)


def parse_info(value: str | None) -> RelayInfo:
    """``versions=2;max-pairs=<N>;chunk-size=65536;max-skip=16`` (§5): items ``key=value``
    separated by ``;`` (spaces around items ignored), the four keys required and each once,
    unknown keys ignored. Malformed: ``invalid_relay_info``; a relay without version 2 or with
    another chunk size or window: ``unsupported_relay``."""
    if value is None:
        raise ProtocolError("missing x-mte-relay-info header", "invalid_relay_info")
    items: dict[str, str] = {}
    for part in value.split(";"):
        key, sep, val = part.strip(" \t").partition("=")
        if not sep:
            raise ProtocolError("x-mte-relay-info item is not key=value", "invalid_relay_info")
        if key in items:
            raise ProtocolError(f"x-mte-relay-info gives {key} twice", "invalid_relay_info")
        items[key] = val
    known = ("versions", "max-pairs", "chunk-size", "max-skip")
    for key in known:
        if key not in items:
            raise ProtocolError(f"x-mte-relay-info lacks {key}", "invalid_relay_info")
    try:
        versions = tuple(parse_decimal(v) for v in items["versions"].split(","))
        max_pairs = parse_decimal(items["max-pairs"])
        chunk_size = parse_decimal(items["chunk-size"])
        max_skip = parse_decimal(items["max-skip"])
    except ProtocolError as exc:
        raise ProtocolError(f"x-mte-relay-info: {exc}", "invalid_relay_info") from None
    if not 1 <= max_pairs <= MAX_MAX_PAIRS:
        raise ProtocolError("x-mte-relay-info max-pairs out of 1..=255", "invalid_relay_info")
    if PROTOCOL_VERSION not in versions:
        raise ProtocolError(
            f"relay supports versions {versions}, not {PROTOCOL_VERSION}", "unsupported_relay"
        )
    if chunk_size != CHUNK_SIZE or max_skip != MAX_SKIP:
        raise ProtocolError(
            f"relay chunk-size {chunk_size} / max-skip {max_skip} are not {CHUNK_SIZE} / "
            f"{MAX_SKIP}",
            "unsupported_relay",
        )
    extra = {k: v for k, v in items.items() if k not in known}
    return RelayInfo(versions, max_pairs, chunk_size, max_skip, extra)


# ---------------------------------------------------------------------------------------------
# §8 nonce and AAD


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
    """The fixed-layout AAD of §8 (all fields always present).

    ``target`` is the request-target as sent; it is bound only into the request headers part
    of a request whose URL is not sealed, and is empty everywhere else. A method that is not
    a token of 1..=255 bytes is ``invalid_method``.
    """
    if len(client_id) != 16 or len(pid) != 16:
        raise ValueError("client id and pair id are 16 bytes")
    if direction != DIR_REQUEST or part != PART_HEADERS or flags & FLAG_URL:
        target = ""
    if not is_token(method) or len(method) > 0xFF:
        raise ProtocolError("method is not a token of 1..=255 bytes", "invalid_method")
    method_b = method.encode("ascii")
    target_b = target.encode("ascii") if target else b""
    if len(target_b) > 0xFFFF:
        raise ValueError("target too long for the AAD")
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
# §9.2 sealed header lists


def is_token(name: str) -> bool:
    return bool(_TOKEN.match(name))


def is_forbidden_request_header(name: str) -> bool:
    """A (lowercase) name the relay refuses among sealed request headers (§9.2)."""
    return (
        name in FORBIDDEN_SEALED_HEADERS
        or name.startswith("x-forwarded-")
        or name.startswith("x-mte-")
    )


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
    (tab allowed); in requests, none of the names the relay refuses (§9.2)."""
    if not is_token(name) or name != name.lower():
        raise ProtocolError(f"invalid header name {name!r}", "forbidden_header")
    if _BAD_VALUE.search(value):
        raise ProtocolError(f"invalid value for header {name}", "forbidden_header")
    if request and is_forbidden_request_header(name):
        raise ProtocolError(f"header {name} may not be sealed", "forbidden_header")


def decode_header_list(plaintext: bytes, request: bool = False) -> list[tuple[str, str]]:
    """Parse and validate a sealed header list (§9.2)."""
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


def _is_dot_segment(segment: str) -> bool:
    decoded = urllib.parse.unquote_to_bytes(segment)
    return decoded.split(b";", 1)[0] in (b".", b"..")


def validate_origin_form(url: str) -> None:
    """§9.2: at most 8192 bytes (else ``uri_too_long``); then origin-form (``invalid_url``):
    one leading ``/`` (not ``//``), only bytes 0x21–0x7e, no ``\\`` and no ``#``; in the path
    (before the first ``?``) no ``%2f``, ``%5c`` or ``%00`` and no dot segment (``.`` or
    ``..`` after percent-decoding, ignoring a ``;parameter`` suffix). The query is not
    inspected beyond the characters."""
    if len(url.encode("utf-8")) > MAX_URL_SIZE:
        raise ProtocolError("request target over 8192 bytes", "uri_too_long")
    if (
        not url.startswith("/")
        or url.startswith("//")
        or any(c == "\\" or c == "#" or not 0x21 <= ord(c) <= 0x7E for c in url)
    ):
        raise ProtocolError("request target is not origin-form", "invalid_url")
    path = url.split("?", 1)[0]
    lowered = path.lower()
    if "%2f" in lowered or "%5c" in lowered or "%00" in lowered:
        raise ProtocolError("request path holds an encoded /, \\ or NUL", "invalid_url")
    if any(_is_dot_segment(segment) for segment in path.split("/")[1:]):
        raise ProtocolError("request path holds a dot segment", "invalid_url")


# ---------------------------------------------------------------------------------------------
# §6 pairing bodies (client side)


def _strict_json(body: bytes, kind: str) -> object:
    """JSON with no key given twice in any object (a parser keeping the last one would accept
    what the relay refuses)."""

    class _Duplicate(ValueError):
        pass

    def no_duplicates(items: list[tuple[str, object]]) -> dict[str, object]:
        out = dict(items)
        if len(out) != len(items):
            raise _Duplicate("duplicate key")
        return out

    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not strict JSON: {exc}", kind) from None


def encode_pairing_request(key_id: bytes, ct: bytes, ek: bytes, pids: list[bytes]) -> bytes:
    """``{"key":b64(fp),"ct":b64(ct_R),"ek":b64(ek_E),"pairs":[b64(pid),...]}`` (§6)."""
    return json.dumps(
        {
            "key": b64encode(key_id),
            "ct": b64encode(ct),
            "ek": b64encode(ek),
            "pairs": [b64encode(pid) for pid in pids],
        },
        separators=(",", ":"),
    ).encode("ascii")


@dataclass(frozen=True)
class PairingResponse:
    """The relay's pairing answer (§6): ``ct_E``, the relay's key ids (current first) and
    ``confirm``."""

    ct: bytes = field(repr=False)
    keys: tuple[bytes, ...]
    confirm: bytes = field(repr=False)


def parse_pairing_response(body: bytes) -> PairingResponse:
    """Exactly the keys ``ct``, ``keys``, ``confirm``; ``ct`` 1120 bytes, ``keys`` 1 to 8
    distinct 32-byte ids, ``confirm`` 32 bytes. Anything else is ``invalid_pairing`` (which
    a client reports as ``pairing_not_confirmed``)."""
    kind = "invalid_pairing"
    doc = _strict_json(body, kind)
    if not isinstance(doc, dict) or set(doc) != {"ct", "keys", "confirm"}:
        raise ProtocolError('pairing answer is not {"ct", "keys", "confirm"}', kind)
    ct_text, keys, confirm_text = doc["ct"], doc["keys"], doc["confirm"]
    if not isinstance(ct_text, str) or not isinstance(confirm_text, str):
        raise ProtocolError("pairing answer ct/confirm are not strings", kind)
    if not isinstance(keys, list) or not 1 <= len(keys) <= 8:
        raise ProtocolError("pairing answer keys is not a list of 1 to 8 ids", kind)
    ct = b64decode(ct_text, kind)
    if len(ct) != 1120:
        raise ProtocolError("pairing answer ct is not 1120 bytes", kind)
    ids: list[bytes] = []
    for item in keys:
        if not isinstance(item, str) or len(item) != 43:
            raise ProtocolError("pairing answer key id is not 43 characters", kind)
        key_id = b64decode(item, kind)
        if key_id in ids:
            raise ProtocolError("pairing answer lists a key twice", kind)
        ids.append(key_id)
    if len(confirm_text) != 43:
        raise ProtocolError("pairing answer confirm is not 43 characters", kind)
    return PairingResponse(ct, tuple(ids), b64decode(confirm_text, kind))
