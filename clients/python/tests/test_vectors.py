"""Every case of protocol/tests/vectors/*.json (version 2), including the failures each case
`expect`s.

Client-side operations use the package's own code (relay keys, choice of a key, the pairing
request and the check of its answer, the ratchet, sealing, STREAM, error tags, header and URL
rules). Relay-side ones (relay key values, client-id issue/verify, counter acceptance and the
retry rule, state blobs, pairing-request parsing and answering) use a small reference written
here from the spec with the same primitives. X-Wing encapsulation with a fixed `eseed` comes
from `kyber-py` (pyca's ML-KEM encapsulation is random only).
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

from pqrelay import PairingNotConfirmedError, PQRelayError
from pqrelay import _codec, _error_tag, _keys, _relay_keys, _stream, _xwing
from pqrelay._codec import DIR_REQUEST, DIR_RESPONSE, PART_HEADERS, PART_URL
from pqrelay._pairing import ClientPairing

from ._helpers import xwing_encapsulate_derand

VECTORS = Path(
    os.environ.get(
        "PQRELAY_VECTORS", Path(__file__).resolve().parents[3] / "protocol" / "tests" / "vectors"
    )
)
FILES = sorted(VECTORS.glob("*.json")) if VECTORS.is_dir() else []
KNOWN = {
    "aad.json", "body.json", "client_id.json", "error_tag.json", "headers.json",
    "lengths.json", "pairing.json", "pairing_json.json", "ratchet.json", "relay_header.json",
    "relay_key.json", "seal.json", "state.json", "url.json",
}
#: Every case type each file holds; a new one needs a test here.
TYPES = {
    "relay_key.json": {"value", "client_id_secret", "fingerprint", "entry"},
    "pairing.json": {"pairing", "client", "relay"},
    "pairing_json.json": {"request", "response"},
    "ratchet.json": {"chain", "accept", "retry_rule"},
    "error_tag.json": {"tag", "verify"},
    "relay_header.json": {
        "relay_header", "relay_header_response", "pairing_form", "exchange_form",
        "request_fields", "relay_info", "relay_info_encode", "relay_keys", "choose",
    },
    "client_id.json": {"issue", "verify"},
    "state.json": {"seal", "open", "kid"},
}


def load(name: str) -> list[dict]:
    return json.loads((VECTORS / name).read_text())["cases"]


def cases_of(name: str, *types: str):
    path = VECTORS / name
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not found"))]
    return [
        pytest.param(c, id=c["name"])
        for c in load(name)
        if not types or c.get("type") in types
    ]


def h(x: str) -> bytes:
    return bytes.fromhex(x)


def sha(x: bytes) -> str:
    return hashlib.sha256(x).hexdigest()


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
    assert {f.name for f in FILES} == KNOWN, "a new vector file needs a test here"
    for f in FILES:
        doc = json.loads(f.read_text())
        assert doc["version"] == 2
        names = [c["name"] for c in doc["cases"]]
        assert len(names) == len(set(names)), f"duplicate case name in {f.name}"
        if f.name in TYPES:
            assert {c["type"] for c in doc["cases"]} <= TYPES[f.name], f.name


# -- relay side: relay keys from their values (§4) -------------------------------------------


class RelayRefusal(Exception):
    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def relay_key_seed(value: str, from_secret: bool = False) -> bytes:
    if not from_secret:
        if len(value) < 43 or not all(c.isascii() and (c.isalnum() or c in "-_") for c in value):
            raise RelayRefusal("invalid_relay_key")
    salt = b"pqrelay/2 relay key from client-id secret" if from_secret else b"pqrelay/2 relay key"
    prk = _keys.hkdf_extract(salt, value.encode("utf-8"))
    return _keys.hkdf_expand(prk, b"pqrelay/2 relay key seed")


def relay_key_pair(value: str) -> tuple[_xwing.DecapsulationKey, _relay_keys.RelayKey]:
    dk = _xwing.DecapsulationKey.from_seed(relay_key_seed(value))
    return dk, _relay_keys.RelayKey.from_public_key(dk.encapsulation_key)


@pytest.mark.parametrize("case", cases_of("relay_key.json", "value", "client_id_secret"))
def test_vector_relay_key_value(case):
    from_secret = case["type"] == "client_id_secret"
    text = case["secret"] if from_secret else case["value"]
    if case["expect"] != "success":
        with pytest.raises(RelayRefusal) as info:
            relay_key_seed(text)
        assert info.value.kind == case["expect"]
        return
    seed = relay_key_seed(text, from_secret)
    assert seed.hex() == case["seed"]
    pk = _xwing.DecapsulationKey.from_seed(seed).encapsulation_key
    assert sha(pk) == case["pk_sha256"]
    key = _relay_keys.RelayKey.from_public_key(pk)
    assert sha(key.entry) == case["entry_sha256"]
    assert key.key_id.hex() == case["key_id"] and key.key_id[:8].hex() == case["kid"]
    assert key.fingerprint == case["fingerprint"]
    if "entry" in case:
        assert _codec.b64encode(key.entry) == case["entry"]


@pytest.mark.parametrize("case", cases_of("relay_key.json", "fingerprint"))
def test_vector_relay_key_fingerprint(case):
    kind, key_id = kind_of(lambda: _relay_keys.parse_fingerprint(case["text"]))
    assert kind == case["expect"]
    if key_id is not None:
        assert key_id.hex() == case["key_id"]
        assert _relay_keys.fingerprint(key_id) == case["text"]


@pytest.mark.parametrize("case", cases_of("relay_key.json", "entry"))
def test_vector_relay_key_entry(case):
    entry = _codec.b64decode(case["entry"])
    kind, key = kind_of(lambda: _relay_keys.RelayKey.parse(entry))
    assert kind == case["expect"]
    if key is not None:
        assert key.key_id.hex() == case["key_id"] and key.fingerprint == case["fingerprint"]
        assert key.entry == entry


# -- pairing.json, pairing_json.json (§6) ---------------------------------------------------


def relay_encapsulate(ek: bytes, eseed: bytes) -> tuple[bytes, bytes]:
    """The relay's X-Wing encapsulation to a checked key (§2)."""
    try:
        _xwing.check_encapsulation_key(ek)
    except ValueError:
        raise RelayRefusal("invalid_pairing") from None
    return xwing_encapsulate_derand(ek, eseed)


def relay_parse_pairing_request(text: bytes, max_pairs: int):
    """§6 step 3: the body of a pairing request (413 over 64 KiB, else 400)."""
    if len(text) > 65536:
        raise RelayRefusal("too_large")
    try:
        doc = _codec._strict_json(text, "invalid_pairing")
    except PQRelayError:
        raise RelayRefusal("invalid_pairing") from None
    if not isinstance(doc, dict) or set(doc) != {"key", "ct", "ek", "pairs"}:
        raise RelayRefusal("invalid_pairing")
    key, ct, ek, pairs = doc["key"], doc["ct"], doc["ek"], doc["pairs"]
    if not all(isinstance(x, str) for x in (key, ct, ek)) or not isinstance(pairs, list):
        raise RelayRefusal("invalid_pairing")
    if not 1 <= len(pairs) <= max_pairs or not all(isinstance(p, str) for p in pairs):
        raise RelayRefusal("invalid_pairing")
    try:
        key_id, ct_r, ek_e = (_codec.b64decode(x) for x in (key, ct, ek))
        pids = [_codec.b64decode(p) for p in pairs]
    except PQRelayError:
        raise RelayRefusal("invalid_pairing") from None
    if len(key_id) != 32 or len(ct_r) != 1120 or len(ek_e) != 1216:
        raise RelayRefusal("invalid_pairing")
    if any(len(p) != 16 for p in pids) or len(set(pids)) != len(pids):
        raise RelayRefusal("invalid_pairing")
    try:
        _xwing.check_encapsulation_key(ek_e)
    except ValueError:
        raise RelayRefusal("invalid_pairing") from None
    return key_id, ct_r, ek_e, pids


def relay_answer(case: dict, request_body: bytes) -> dict:
    """§6 steps 3–5 and the derivation: the relay of `relay_key_values`."""
    key_id, ct_r, ek_e, pids = relay_parse_pairing_request(request_body, case["max_pairs"])
    keys = [relay_key_pair(v) for v in case["relay_key_values"]]
    held = [dk for dk, k in keys if k.key_id == key_id]
    if not held:
        raise RelayRefusal("unknown_relay_key")
    try:
        ss_r = _xwing.decapsulate(held[0], ct_r)
    except ValueError:  # all-zero X25519 share
        raise RelayRefusal("invalid_pairing") from None
    ss_e, ct_e = relay_encapsulate(ek_e, h(case["eseed_e"]))
    th = _keys.transcript_hash(h(case["client_id"]), key_id, ct_r, ek_e, pids, ct_e)
    root = _keys.pairing_root(ss_r, ss_e, th)
    key_ids = [k.key_id for _, k in keys]
    confirm = _keys.confirm_tag(root, key_ids)
    response = json.dumps(
        {
            "ct": _codec.b64encode(ct_e),
            "keys": [_codec.b64encode(k) for k in key_ids],
            "confirm": _codec.b64encode(confirm),
        },
        separators=(",", ":"),
    ).encode()
    return {
        "ct_r": ct_r, "ss_r": ss_r, "ek_e": ek_e, "ct_e": ct_e, "ss_e": ss_e, "th": th,
        "prk": _keys.hkdf_extract(b"pqrelay/2 pair", ss_r + ss_e), "root": root,
        "kc": _keys.hkdf_expand(root, b"pqrelay/2 confirm"), "confirm": confirm,
        "ck0": [_keys.chain_key_0(root, pid) for pid in pids], "response_body": response,
    }


def client_pairing(case: dict) -> ClientPairing:
    _, key = relay_key_pair(case["relay_key_value"])
    eseed_r = h(case["eseed_r"])
    return ClientPairing(
        h(case["client_id"]),
        key,
        [h(p) for p in case["pair_ids"]],
        encapsulate=lambda pk: xwing_encapsulate_derand(pk, eseed_r),
        ephemeral_seed=h(case["seed_e"]),
    )


@pytest.mark.parametrize("case", cases_of("pairing.json", "pairing"))
def test_vector_pairing_both_sides(case):
    _, key = relay_key_pair(case["relay_key_value"])
    assert key.key_id.hex() == case["key_id"] and key.key_id[:8].hex() == case["kid"]
    pairing = client_pairing(case)
    assert pairing.body.decode() == case["request_body"]
    out = relay_answer(case, pairing.body)
    assert sha(out["ct_r"]) == case["ct_r_sha256"] and out["ss_r"].hex() == case["ss_r"]
    assert sha(out["ek_e"]) == case["ek_e_sha256"]
    assert sha(out["ct_e"]) == case["ct_e_sha256"] and out["ss_e"].hex() == case["ss_e"]
    for name in ("th", "prk", "root", "kc", "confirm"):
        assert out[name].hex() == case[name], name
    assert [c.hex() for c in out["ck0"]] == case["ck0"]
    assert out["response_body"].decode() == case["response_body"]
    assert [_relay_keys.RelayKey.from_public_key(relay_key_pair(v)[1].public_key).key_id.hex()
            for v in case["relay_key_values"]] == case["relay_key_ids"]
    # The client confirms the answer and derives the same chain keys.
    confirmed = pairing.complete(case["response_body"].encode())
    assert [c.hex() for c in confirmed.chain_keys] == case["ck0"]
    assert confirmed.transcript_hash.hex() == case["th"]
    assert [k.hex() for k in confirmed.key_ids] == case["relay_key_ids"]
    with pytest.raises(RuntimeError):  # a pairing completes once (its secrets are dropped)
        pairing.complete(case["response_body"].encode())


REASONS = {
    "mismatch": "confirm does not verify",
    "non_contributory": "all zero",
    "malformed": "malformed answer",
    "key_not_listed": "does not list the key",
}


@pytest.mark.parametrize("case", cases_of("pairing.json", "client"))
def test_vector_pairing_client_refuses(case):
    pairing = client_pairing(case)
    with pytest.raises(PairingNotConfirmedError) as info:
        pairing.complete(case["response_body"].encode())
    assert info.value.kind == case["expect"] == "pairing_not_confirmed"
    assert REASONS[case["reason"]] in info.value.reason
    assert pairing.key.fingerprint in str(info.value)  # the hard error names the key


@pytest.mark.parametrize("case", cases_of("pairing.json", "relay"))
def test_vector_pairing_relay_refuses(case):
    with pytest.raises(RelayRefusal) as info:
        relay_answer(case, case["request_body"].encode())
    assert info.value.kind == case["expect"]


@pytest.mark.parametrize("case", cases_of("pairing_json.json", "request"))
def test_vector_pairing_json_request(case):
    if "body" not in case:  # request_too_large: only its length is stored
        text = b"{" + b" " * (case["body_len"] - 2) + b"}"
    else:
        text = case["body"].encode()
    try:
        key_id, ct, ek, pids = relay_parse_pairing_request(text, case.get("max_pairs", 25))
        kind = "success"
    except RelayRefusal as exc:
        kind = exc.kind
    assert kind == case["expect"]
    if kind == "success":
        assert key_id.hex() == case["key_id"]
        assert (sha(ct), sha(ek)) == (case["ct_sha256"], case["ek_sha256"])
        assert [p.hex() for p in pids] == case["pair_ids"]
        # The client's encoder writes the same request back (byte layout is free).
        again = _codec.encode_pairing_request(key_id, ct, ek, pids)
        assert relay_parse_pairing_request(again, 25) == (key_id, ct, ek, pids)


@pytest.mark.parametrize("case", cases_of("pairing_json.json", "response"))
def test_vector_pairing_json_response(case):
    kind, parsed = kind_of(lambda: _codec.parse_pairing_response(case["body"].encode()))
    assert kind == case["expect"]
    if parsed is not None:
        assert sha(parsed.ct) == case["ct_sha256"]
        assert [k.hex() for k in parsed.keys] == case["key_ids"]
        assert parsed.confirm.hex() == case["confirm"]


# -- ratchet.json (§7, §14) -----------------------------------------------------------------


def state_bytes(e: int, ck: bytes, kid: bytes) -> bytes:
    return b"\x02" + struct.pack(">Q", e) + ck + kid


def relay_accept(state: bytes, m: int, max_skip: int, retry: bool):
    """§7: accept counter m against state (e, ck_e); commit (m+1, ck_{m+1}) before the retry
    rule (m >= 1 and m - 1 >= e) is checked."""
    assert len(state) == 49 and state[0] == 2
    e = struct.unpack(">Q", state[1:9])[0]
    ck, kid = state[9:41], state[41:]
    if not (e <= m <= e + max_skip) or m > _keys.MAX_COUNTER:
        return "counter_rejected", None
    for n in range(e, m):
        _, ck = _keys.derive_exchange(ck, n)
    keys, ck_next = _keys.derive_exchange(ck, m)
    after = state_bytes(m + 1, ck_next, kid)
    if retry and not retry_rule(m, e):
        return "retry_refused", (keys, after)
    return "success", (keys, after)


def retry_rule(m: int, e: int) -> bool:
    return m >= 1 and m - 1 >= e


@pytest.mark.parametrize("case", cases_of("ratchet.json", "chain"))
def test_vector_ratchet_chain(case):
    ratchet = _keys.Ratchet(h(case["ck0"]))
    ck = h(case["ck0"])
    for step in case["steps"]:
        assert ck.hex() == step["ck"]
        keys, ck = _keys.derive_exchange(ck, int(step["counter"]))
        assert (keys.request_key.hex(), keys.response_key.hex(), keys.error_key.hex()) == (
            step["kq"], step["ks"], step["ke"]
        )
        assert ck.hex() == step["ck_next"]
        client = ratchet.advance()  # the client ratchet gives the same keys
        assert client.counter == int(step["counter"])
        assert (client.request_key, client.error_key) == (keys.request_key, keys.error_key)


@pytest.mark.parametrize("case", cases_of("ratchet.json", "accept"))
def test_vector_ratchet_accept(case):
    state = case["state"]
    raw = h(state["bytes"])
    assert raw == state_bytes(int(state["e"]), h(state["ck"]), h(state["kid"]))
    kind, out = relay_accept(raw, int(case["counter"]), case["max_skip"], case["retry"])
    assert kind == case["expect"]
    assert (out is None) == ("state_after" not in case)
    if out is not None:
        keys, after = out
        k = case["keys"]
        assert (keys.request_key.hex(), keys.response_key.hex(), keys.error_key.hex()) == (
            k["kq"], k["ks"], k["ke"]
        )
        assert after.hex() == case["state_after"]["bytes"]
        assert int(case["e"]) == int(state["e"])


@pytest.mark.parametrize("case", cases_of("ratchet.json", "retry_rule"))
def test_vector_retry_rule(case):
    ok = retry_rule(int(case["counter"]), int(case["e"]))
    assert ("success" if ok else "retry_refused") == case["expect"]


# -- error_tag.json (§11.2) -----------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("error_tag.json", "tag"))
def test_vector_error_tag(case):
    args = (
        h(case["client_id"]), h(case["pair_id"]), int(case["counter"]), case["status"],
        case["code"], case["verdict"],
    )
    kind, message = kind_of(lambda: _error_tag.error_tag_message(*args))
    assert kind == case["expect"]
    if message is None:
        return
    assert message.hex() == case["message"]
    tag = _error_tag.error_tag(h(case["ke"]), *args)
    assert tag.hex() == case["tag"] and _codec.b64encode(tag) == case["tag_header"]
    assert _error_tag.VERDICTS[case["verdict"]] == case["verdict_byte"]


@pytest.mark.parametrize("case", cases_of("error_tag.json", "verify"))
def test_vector_error_verify(case):
    kind, verdict = kind_of(
        lambda: _error_tag.verify_error_reply(
            h(case["ke"]), h(case["client_id"]), h(case["pair_id"]), int(case["counter"]),
            case["status"], case["code"], case["verdict"], case["tag_header"],
        )
    )
    assert kind == case["expect"]
    if verdict is not None:
        assert verdict == case["verdict_out"]


# -- aad.json -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("aad.json"))
def test_vector_aad(case):
    index = int(case["index"])
    kind, out = kind_of(lambda: aad_for(case["context"], case["part"], index, case["final"]))
    assert kind == case["expect"]
    if out is not None:
        assert out.hex() == case["aad"]
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
        assert sha(plain) == case["plain_sha256"]
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
        assert sha(wire) == case["encoded_sha256"]
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


# -- relay_header.json (§5, §9.1, §13) ------------------------------------------------------


def check_parsed(parsed, p: dict, value: str) -> None:
    if isinstance(parsed, _codec.RelayToken):
        assert p["form"] == "discovery"
        assert parsed.token == p["token"] and parsed.client_id.hex() == p["client_id"]
        assert f"2.{parsed.token}" == value
    else:
        assert p["form"] == "exchange"
        assert parsed.token.token == p["token"]
        assert parsed.token.client_id.hex() == p["client_id"]
        assert parsed.pid.hex() == p["pair_id"]
        assert str(parsed.counter) == p["counter"] and parsed.flags == p["flags"]
        assert parsed.encode() == value


@pytest.mark.parametrize("case", cases_of("relay_header.json", "relay_header", "relay_header_response"))
def test_vector_relay_header(case):
    request = case["type"] == "relay_header"
    kind, parsed = kind_of(lambda: _codec.parse_relay_header(case["value"], request=request))
    assert kind == case["expect"]
    if parsed is not None:
        check_parsed(parsed, case["parsed"], case["value"])


@pytest.mark.parametrize("case", cases_of("relay_header.json", "pairing_form", "exchange_form"))
def test_vector_relay_header_form(case):
    fn = _codec.parse_discovery_header if case["type"] == "pairing_form" else (
        lambda v: _codec.parse_exchange_header(v, request=True)
    )
    kind, _ = kind_of(lambda: fn(case["value"]))
    assert kind == case["expect"]


def relay_single_field(name: str, fields: list[str]) -> str:
    """The relay's rule for `x-mte-relay` / `x-mte-relay-eh` (§9.1): exactly one field."""
    if len(fields) > 1:
        raise RelayRefusal("invalid_header")
    if not fields:
        raise RelayRefusal("client_id_missing" if name == "x-mte-relay" else "invalid_header")
    return fields[0]


@pytest.mark.parametrize("case", cases_of("relay_header.json", "request_fields"))
def test_vector_request_fields(case):
    try:
        relay_single_field(case["header"], case["fields"])
        kind = "success"
    except RelayRefusal as exc:
        kind = exc.kind
    assert kind == case["expect"]


@pytest.mark.parametrize("case", cases_of("relay_header.json", "relay_info"))
def test_vector_relay_info(case):
    kind, info = kind_of(lambda: _codec.parse_info(case["value"]))
    assert kind == case["expect"]
    if info is not None:
        p = case["parsed"]
        assert (list(info.versions), info.max_pairs) == (p["versions"], p["max_pairs"])
        assert info.pairs_per_request == min(p["max_pairs"], 255)


@pytest.mark.parametrize("case", cases_of("relay_header.json", "relay_info_encode"))
def test_vector_relay_info_encode(case):
    value = f"versions=2;max-pairs={case['max_pairs']};chunk-size=65536;max-skip=16"
    assert value == case["value"]
    assert _codec.parse_info(value).max_pairs == case["max_pairs"]


@pytest.mark.parametrize("case", cases_of("relay_header.json", "relay_keys"))
def test_vector_relay_keys(case):
    kind, keys = kind_of(lambda: _relay_keys.parse_relay_keys(case["value"]))
    assert kind == case["expect"]
    if keys is not None:
        assert [k.key_id.hex() for k in keys] == case["key_ids"]
        assert [k.fingerprint for k in keys] == case["fingerprints"]


@pytest.mark.parametrize("case", cases_of("relay_header.json", "choose"))
def test_vector_choose(case):
    offered = _relay_keys.parse_relay_keys(case["value"])
    trusted = [_relay_keys.parse_fingerprint(f) for f in case["trusted"]]
    kind, key = kind_of(lambda: _relay_keys.choose(offered, trusted))
    assert kind == case["expect"]
    if key is not None:
        assert key.fingerprint == case["chosen"]


# -- client_id.json (relay side; the client parses tokens) ----------------------------------


def client_id_mac(secret: str, cid: bytes) -> bytes:
    return hmac.new(secret.encode(), b"pqrelay/2 client-id" + cid, hashlib.sha256).digest()


def issue(secret: str, cid: bytes) -> str:
    return _codec.b64encode(cid + client_id_mac(secret, cid))


def verify(secrets: list[str], token: str):
    try:
        parsed = _codec.RelayToken.parse(token)
    except PQRelayError as exc:
        return exc.kind, None
    raw = _codec.b64decode(token)
    for i, secret in enumerate(secrets):
        if hmac.compare_digest(client_id_mac(secret, raw[:16]), raw[16:]):
            return "success", (parsed.client_id, i > 0, issue(secrets[0], raw[:16]))
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
        assert (cid.hex(), resigned, token_out) == (
            case["client_id"], case["resigned"], case["token_out"]
        )


# -- state.json (relay side) ----------------------------------------------------------------


def state_key(secret: str) -> bytes:
    prk = _keys.hkdf_extract(b"pqrelay/2 state", secret.encode())
    return _keys.hkdf_expand(prk, b"pqrelay/2 state key")


def seal_state(secret: str, cid: bytes, pid: bytes, state: bytes, salt: bytes) -> bytes:
    k = _keys.hkdf_expand(state_key(secret), b"pqrelay/2 state blob" + salt)
    return salt + AESGCM(k).encrypt(bytes(12), state, b"pqrelay/2 state" + cid + pid)


def open_state(secret: str, cid: bytes, pid: bytes, blob: bytes):
    if len(blob) != 81:
        return "state_failure", None
    k = _keys.hkdf_expand(state_key(secret), b"pqrelay/2 state blob" + blob[:16])
    try:
        state = AESGCM(k).decrypt(bytes(12), blob[16:], b"pqrelay/2 state" + cid + pid)
    except Exception:
        return "state_failure", None
    if len(state) != 49 or state[0] != 2:
        return "invalid_state", None
    return "success", state


@pytest.mark.parametrize("case", cases_of("state.json"))
def test_vector_state(case):
    if case["type"] == "kid":
        kids = [relay_key_pair(v)[1].key_id[:8] for v in case["relay_key_values"]]
        assert ("success" if h(case["kid"]) in kids else "state_failure") == case["expect"]
        return
    cid, pid = h(case["client_id"]), h(case["pair_id"])
    if case["type"] == "seal":
        state = h(case["state"])
        assert state == state_bytes(int(case["e"]), h(case["ck"]), h(case["kid"]))
        blob = seal_state(case["state_secret"], cid, pid, state, h(case["salt"]))
        assert blob.hex() == case["blob"]
        return
    kind, state = open_state(case["state_secret"], cid, pid, h(case["blob"]))
    assert kind == case["expect"]
    if state is not None:
        assert struct.unpack(">Q", state[1:9])[0] == int(case["e"])
        assert state[9:41].hex() == case["ck"] and state[41:].hex() == case["kid"]


# -- headers.json, url.json -----------------------------------------------------------------


@pytest.mark.parametrize("case", cases_of("headers.json"))
def test_vector_headers(case):
    request = case["direction"] == "request"
    kind, out = kind_of(lambda: _codec.decode_header_list(case["json"].encode(), request))
    assert kind == case["expect"]
    if out is not None:
        assert [list(p) for p in out] == case["headers"]


def url_of(case: dict) -> str:
    if "url" in case:
        return case["url"]
    prefix = case["url_prefix"]
    return prefix + case["url_fill"] * (case["url_len"] - len(prefix))


@pytest.mark.parametrize("case", cases_of("url.json"))
def test_vector_url(case):
    url = url_of(case)
    assert "url" in case or len(url) == case["url_len"]
    kind, _ = kind_of(lambda: _codec.validate_origin_form(url))
    assert kind == case["expect"]
