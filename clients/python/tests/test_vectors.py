"""Every case of protocol/tests/vectors/*.json, including the failures each case `expect`s.

Client-side operations use the package's own code. Relay-side ones (client-id issue/verify,
counter acceptance, state blobs, pairing-request parsing, encapsulation) use a small reference
written here from the spec with the same primitives.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pqrelay import PQRelayError
from pqrelay import _codec, _keys, _stream, _xwing
from pqrelay._codec import DIR_REQUEST, DIR_RESPONSE, PART_HEADERS, PART_URL

from ._helpers import xwing_encapsulate_derand

VECTORS = Path(
    os.environ.get(
        "PQRELAY_VECTORS", Path(__file__).resolve().parents[3] / "protocol" / "tests" / "vectors"
    )
)
FILES = sorted(VECTORS.glob("*.json")) if VECTORS.is_dir() else []
KNOWN = {
    "aad.json", "body.json", "client_id.json", "headers.json", "lengths.json", "pairing.json",
    "pairing_json.json", "ratchet.json", "relay_header.json", "seal.json", "state.json", "url.json",
}


def cases_of(name: str):
    path = VECTORS / name
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not found"))]
    return [pytest.param(c, id=c["name"]) for c in json.loads(path.read_text())["cases"]]


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


def kind_of(fn) -> tuple[str, object]:
    try:
        return "success", fn()
    except PQRelayError as exc:
        return getattr(exc, "kind", type(exc).__name__), None


def aad_for(ctx: dict, part: int, index: int = 0, final: bool = True) -> bytes:
    return _codec.aad(
        direction=DIR_RESPONSE if ctx["direction"] == "response" else DIR_REQUEST,
        part=part,
        flags=ctx["flags"],
        client_id=h(ctx["client_id"]),
        pid=h(ctx["pair_id"]),
        counter=int(ctx["counter"]),
        index=index,
        final=final,
        status=ctx["status"],
        method=ctx["method"],
        target=ctx["target"],
    )


def test_vector_files_all_known():
    if not FILES:
        pytest.skip(f"no vectors in {VECTORS}")
    assert {f.name for f in FILES} <= KNOWN, "a new vector file needs a test here"


# -- pairing.json ---------------------------------------------------------------------------


class RelayRefusal(Exception):
    pass


def relay_encapsulate(ek: bytes, eseed: bytes) -> tuple[bytes, bytes]:
    """The relay's X-Wing encapsulation; refuses keys that fail the FIPS 203 §7.2 check or
    whose X25519 part is a low-order point (the X25519 secret would be all zero)."""
    if len(ek) != _xwing.EK_SIZE:
        raise RelayRefusal("ek length")
    try:
        from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

        mlkem.MLKEM768PublicKey.from_public_bytes(ek[:1184])
        x25519.X25519PrivateKey.generate().exchange(
            x25519.X25519PublicKey.from_public_bytes(ek[1184:])
        )
    except ValueError as exc:
        raise RelayRefusal(str(exc)) from None
    return xwing_encapsulate_derand(ek, eseed)


@pytest.mark.parametrize("case", cases_of("pairing.json"))
def test_vector_pairing(case):
    if case["expect"] == "success":
        dk = _xwing.DecapsulationKey.from_seed(h(case["seed"]))
        assert dk.encapsulation_key.hex() == case["ek"]
        ss, ct = relay_encapsulate(h(case["ek"]), h(case["eseed"]))
        assert ct.hex() == case["ct"] and ss.hex() == case["ss"]
        assert _xwing.decapsulate(dk, h(case["ct"])).hex() == case["ss"]
        ck0 = _keys.initial_chain_key(ss, h(case["client_id"]), h(case["pair_id"]))
        assert ck0.hex() == case["ck0"]
        return
    assert case["expect"] == "invalid_pairing"
    if case["side"] == "relay":
        with pytest.raises(RelayRefusal):
            relay_encapsulate(h(case["ek"]), os.urandom(64))
    else:  # the client refuses a ciphertext whose X25519 secret is zero
        with pytest.raises(ValueError):
            _xwing.decapsulate(h(case["seed"]), h(case["ct"]))


# -- ratchet.json ---------------------------------------------------------------------------


def relay_accept(state: bytes, m: int, max_skip: int):
    assert len(state) == 41 and state[0] == 1
    e = struct.unpack(">Q", state[1:9])[0]
    ck = state[9:]
    if not (e <= m <= e + max_skip) or m > _keys.MAX_COUNTER:
        return "counter_rejected", None
    for n in range(e, m):
        _, ck = _keys.derive_exchange(ck, n)
    keys, ck_next = _keys.derive_exchange(ck, m)
    return "success", (keys, b"\x01" + struct.pack(">Q", m + 1) + ck_next)


@pytest.mark.parametrize("case", cases_of("ratchet.json"))
def test_vector_ratchet(case):
    if case["type"] == "chain":
        ratchet = _keys.Ratchet(h(case["ck0"]))
        ck = h(case["ck0"])
        for step in case["steps"]:
            assert ck.hex() == step["ck"]
            keys, ck = _keys.derive_exchange(ck, int(step["counter"]))
            assert (keys.request_key.hex(), keys.response_key.hex()) == (step["kq"], step["ks"])
            assert ck.hex() == step["ck_next"]
            client = ratchet.advance()  # the client ratchet gives the same keys
            assert client.counter == int(step["counter"])
            assert client.request_key == keys.request_key
        return
    state = case["state"]
    assert h(state["bytes"]) == b"\x01" + struct.pack(">Q", int(state["next"])) + h(state["ck"])
    kind, out = relay_accept(h(state["bytes"]), int(case["counter"]), case["max_skip"])
    assert kind == case["expect"]
    if out is not None:
        keys, after = out
        assert keys.request_key.hex() == case["kq"] and keys.response_key.hex() == case["ks"]
        assert after.hex() == case["state_after"]["bytes"]


# -- aad.json -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("aad.json"))
def test_vector_aad(case):
    index = int(case["index"])
    assert aad_for(case["context"], case["part"], index, case["final"]).hex() == case["aad"]
    assert _codec.nonce(case["part"], case["final"], index).hex() == case["nonce"]


# -- seal.json ------------------------------------------------------------------------------


def open_url(key: bytes, ctx: dict, sealed: str) -> str:
    if not sealed.startswith("/"):
        raise _codec.ProtocolError("sealed url lacks /", "decode_failure")
    raw = _codec.b64decode(sealed[1:], "decode_failure")
    plain = _keys.open_(key, _codec.nonce(PART_URL, True, 0), raw, aad_for(ctx, PART_URL))
    try:
        url = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise _codec.ProtocolError("url not UTF-8", "invalid_url") from None
    _codec.validate_origin_form(url)
    return url


def open_headers(key: bytes, ctx: dict, sealed: str) -> list[tuple[str, str]]:
    if len(sealed) > _codec.MAX_EH_SIZE:
        raise _codec.ProtocolError("too large", "headers_too_large")
    raw = _codec.b64decode(sealed, "decode_failure")
    plain = _keys.open_(key, _codec.nonce(PART_HEADERS, True, 0), raw, aad_for(ctx, PART_HEADERS))
    return _codec.decode_header_list(plain, request=ctx["direction"] == "request")


@pytest.mark.parametrize("case", cases_of("seal.json"))
def test_vector_seal(case):
    key, ctx = h(case["key"]), case["context"]
    if case["expect"] == "success":
        part = PART_URL if case["part"] == "url" else PART_HEADERS
        sealed = _keys.seal(
            key, _codec.nonce(part, True, 0), case["plaintext"].encode(), aad_for(ctx, part)
        )
        wire = ("/" if part == PART_URL else "") + _codec.b64encode(sealed)
        assert wire == case["sealed"]
        if part == PART_URL:
            assert open_url(key, ctx, wire) == case["plaintext"]
        else:
            assert [list(p) for p in open_headers(key, ctx, wire)] == case["headers"]
        return
    fn = open_url if case["part"] == "url" else open_headers
    kind, _ = kind_of(lambda: fn(key, ctx, case["sealed"]))
    assert kind == case["expect"]


# -- body.json ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("body.json"))
def test_vector_body(case):
    key, ctx = h(case["key"]), case["context"]

    def aad_fn(i: int, final: bool) -> bytes:
        return aad_for(ctx, 3, i, final)

    expected = case.get("expected_plain_len")
    if case["expect"] == "success":
        plain = body(case["plain_len"])
        assert hashlib.sha256(plain).hexdigest() == case["plain_sha256"]
        if case["mode"] == "sized":
            wire = b"".join(_stream.seal_sized(key, aad_fn, [plain], len(plain)))
            assert _stream.encoded_len(len(plain)) == case["encoded_len"]
        else:
            sealer = _stream.StreamSealer(key, aad_fn)
            out, pos, sizes = [], 0, case["records"]
            for i, n in enumerate(sizes):
                out.append(sealer.seal(plain[pos : pos + n], final=i == len(sizes) - 1))
                pos += n
            wire = b"".join(out)
        assert len(wire) == case["encoded_len"]
        assert hashlib.sha256(wire).hexdigest() == case["encoded_sha256"]
        if "encoded" in case:
            assert wire.hex() == case["encoded"]
    else:
        wire = h(case["encoded"])

    def decode():
        opener = _stream.StreamOpener(key, aad_fn, expected)
        out = b"".join(opener.feed(wire))
        opener.finish()
        return out

    kind, out = kind_of(decode)
    assert kind == case["expect"]
    if kind == "success":
        assert out == body(case["plain_len"])
        # The same wire split at every awkward place decodes the same.
        opener = _stream.StreamOpener(key, aad_fn, expected)
        pieces = [wire[i : i + 3] for i in range(0, len(wire), 3)] if len(wire) < 5000 else [wire]
        assert b"".join(b"".join(opener.feed(p)) for p in pieces) == out
        opener.finish()


# -- lengths.json ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("lengths.json"))
def test_vector_lengths(case):
    e = int(case["encoded_len"])
    if case["expect"] == "success":
        assert _stream.encoded_len(int(case["plain_len"])) == e
        assert _stream.plain_len(e) == int(case["plain_len"])
    else:
        kind, _ = kind_of(lambda: _stream.plain_len(e))
        assert kind == case["expect"]


# -- relay_header.json ----------------------------------------------------------------------


def parse_relay_header(value: str):
    if len(value.split(".")) == 2:
        return "discovery", _codec.parse_discovery_header(value)
    return "exchange", _codec.parse_exchange_header(value)


@pytest.mark.parametrize("case", cases_of("relay_header.json"))
def test_vector_relay_header(case):
    if case["type"] == "relay_info":
        kind, info = kind_of(lambda: _codec.parse_info(case["value"]))
        assert kind == case["expect"]
        if info is not None:
            p = case["parsed"]
            assert (list(info.versions), info.max_pairs, info.chunk_size, info.max_skip) == (
                p["versions"], p["max_pairs"], p["chunk_size"], p["max_skip"]
            )
        return
    kind, out = kind_of(lambda: parse_relay_header(case["value"]))
    assert kind == case["expect"]
    if out is None:
        return
    form, parsed = out
    p = case["parsed"]
    assert form == p["form"]
    if form == "discovery":
        assert parsed.token == p["token"] and parsed.client_id.hex() == p["client_id"]
    else:
        assert parsed.token.token == p["token"]
        assert parsed.token.client_id.hex() == p["client_id"]
        assert parsed.pid.hex() == p["pair_id"]
        assert str(parsed.counter) == p["counter"] and parsed.flags == p["flags"]
        assert parsed.encode() == case["value"]


# -- client_id.json (relay side) ------------------------------------------------------------


def issue(secret: str, cid: bytes) -> str:
    mac = hmac.new(secret.encode(), b"pqrelay/1 client-id" + cid, hashlib.sha256).digest()
    return _codec.b64encode(cid + mac)


def verify(secrets: list[str], token: str):
    try:
        raw = _codec.b64decode(token)
    except PQRelayError:
        return "invalid_client_id", None
    if len(raw) != 48:
        return "invalid_client_id", None
    cid, mac = raw[:16], raw[16:]
    for i, secret in enumerate(secrets):
        good = hmac.new(secret.encode(), b"pqrelay/1 client-id" + cid, hashlib.sha256).digest()
        if hmac.compare_digest(good, mac):
            return "success", (cid, i > 0, issue(secrets[0], cid))
    return "invalid_client_id", None


@pytest.mark.parametrize("case", cases_of("client_id.json"))
def test_vector_client_id(case):
    if case["type"] == "issue":
        token = issue(case["secret"], h(case["client_id"]))
        assert token == case["token"]
        assert _codec.b64decode(token)[16:].hex() == case["mac"]
        assert _codec.RelayToken.parse(token).client_id.hex() == case["client_id"]
        return
    kind, out = verify(case["secrets"], case["token"])
    assert kind == case["expect"]
    if out is not None:
        cid, resigned, token_out = out
        assert (cid.hex(), resigned, token_out) == (case["client_id"], case["resigned"], case["token_out"])


# -- state.json (relay side) ----------------------------------------------------------------


def state_key(secret: str) -> bytes:
    prk = _keys.hkdf_extract(b"pqrelay/1 state", secret.encode())
    return _keys.hkdf_expand(prk, b"pqrelay/1 state key")


def seal_state(secret: str, cid: bytes, pid: bytes, state: bytes, salt: bytes) -> bytes:
    k = _keys.hkdf_expand(state_key(secret), b"pqrelay/1 state blob" + salt)
    return salt + AESGCM(k).encrypt(bytes(12), state, b"pqrelay/1 state" + cid + pid)


def open_state(secret: str, cid: bytes, pid: bytes, blob: bytes):
    if len(blob) != 73:
        return "state_failure", None
    k = _keys.hkdf_expand(state_key(secret), b"pqrelay/1 state blob" + blob[:16])
    try:
        state = AESGCM(k).decrypt(bytes(12), blob[16:], b"pqrelay/1 state" + cid + pid)
    except Exception:
        return "state_failure", None
    if state[0] != 1:
        return "invalid_state", None
    return "success", state


@pytest.mark.parametrize("case", cases_of("state.json"))
def test_vector_state(case):
    cid, pid = h(case["client_id"]), h(case["pair_id"])
    if case["type"] == "seal":
        state = h(case["state"])
        assert state == b"\x01" + struct.pack(">Q", int(case["next"])) + h(case["ck"])
        blob = seal_state(case["state_secret"], cid, pid, state, h(case["salt"]))
        assert blob.hex() == case["blob"]
        return
    kind, state = open_state(case["state_secret"], cid, pid, h(case["blob"]))
    assert kind == case["expect"]
    if state is not None:
        assert struct.unpack(">Q", state[1:9])[0] == int(case["next"])
        assert state[9:].hex() == case["ck"]


# -- headers.json, url.json -----------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("headers.json"))
def test_vector_headers(case):
    request = case["direction"] == "request"
    kind, out = kind_of(lambda: _codec.decode_header_list(case["json"].encode(), request))
    assert kind == case["expect"]
    if out is not None:
        assert [list(p) for p in out] == case["headers"]


@pytest.mark.parametrize("case", cases_of("url.json"))
def test_vector_url(case):
    kind, _ = kind_of(lambda: _codec.validate_origin_form(case["url"]))
    assert kind == case["expect"]


# -- pairing_json.json ----------------------------------------------------------------------


def relay_parse_pairing_request(text: bytes, max_pairs: int):
    """The relay's check of a pairing body (§5)."""

    class Bad(Exception):
        pass

    def no_dup(items):
        d = dict(items)
        if len(d) != len(items):
            raise Bad("duplicate key")
        return d

    if len(text) > 65536:
        raise Bad("too large")
    try:
        doc = json.loads(text.decode("utf-8"), object_pairs_hook=no_dup)
    except ValueError as exc:
        raise Bad(str(exc)) from None
    if not isinstance(doc, dict) or set(doc) != {"pairs"} or not isinstance(doc["pairs"], list):
        raise Bad("shape")
    pairs = doc["pairs"]
    if not 1 <= len(pairs) <= max_pairs:
        raise Bad("count")
    out, seen = [], set()
    for p in pairs:
        if not isinstance(p, dict) or set(p) != {"id", "ek"}:
            raise Bad("entry")
        if not isinstance(p["id"], str) or not isinstance(p["ek"], str):
            raise Bad("types")
        try:
            pid, ek = _codec.b64decode(p["id"]), _codec.b64decode(p["ek"])
        except PQRelayError:
            raise Bad("b64") from None
        if len(pid) != 16 or pid in seen:
            raise Bad("id")
        seen.add(pid)
        try:
            relay_encapsulate(ek, os.urandom(64))
        except RelayRefusal:
            raise Bad("ek") from None
        out.append((pid, ek))
    return out


@pytest.mark.parametrize("case", cases_of("pairing_json.json"))
def test_vector_pairing_json(case):
    if case["type"] == "request":
        if "body" not in case:  # request_too_large: only its length is stored
            text = b"{" + b" " * (case["body_len"] - 2) + b"}"
        else:
            text = case["body"].encode()
        try:
            pairs = relay_parse_pairing_request(text, case.get("max_pairs", 25))
            kind = "success"
        except Exception:
            kind, pairs = "invalid_pairing", None
        assert kind == case["expect"]
        if pairs is not None:
            assert [{"id": p.hex(), "ek_sha256": hashlib.sha256(e).hexdigest()} for p, e in pairs] == case["pairs"]
            # The client's encoder writes the same pairs back (byte layout is free).
            again = _codec.encode_pairing_request(pairs)
            assert relay_parse_pairing_request(again, 25) == pairs
        return
    pids = [h(x) for x in case["request_ids"]]
    kind, cts = kind_of(lambda: _codec.parse_pairing_response(case["body"].encode(), pids))
    assert kind == case["expect"]
    if cts is not None:
        assert [{"id": p.hex(), "ct_sha256": hashlib.sha256(c).hexdigest()} for p, c in zip(pids, cts)] == case["pairs"]
