import pytest

from pqrelay import ProtocolError
from pqrelay._codec import (
    aad,
    b64decode,
    b64encode,
    nonce,
    parse_decimal,
    parse_exchange_header,
    parse_info,
)


def test_b64_round_trip_no_padding():
    for n in range(0, 40):
        data = bytes(range(n))
        text = b64encode(data)
        assert "=" not in text
        assert b64decode(text) == data


@pytest.mark.parametrize("bad", ["AA==", "A", "AB+/", "AB!", "AB", "AAB"])
def test_b64_rejects_padding_alphabet_and_non_canonical(bad):
    # "AB" encodes 0x00 with non-zero trailing bits; "AAB" likewise.
    with pytest.raises(ProtocolError):
        b64decode(bad)


@pytest.mark.parametrize("text,value", [("0", 0), ("7", 7), ("18446744073709551615", 2**64 - 1)])
def test_decimal_ok(text, value):
    assert parse_decimal(text) == value


@pytest.mark.parametrize("bad", ["", "01", "+1", "-1", "1.0", " 1", "18446744073709551616", "123456789012345678901"])
def test_decimal_rejects(bad):
    with pytest.raises(ProtocolError):
        parse_decimal(bad)


def test_exchange_header_parse_and_encode():
    token = b64encode(bytes(48))
    pid = b64encode(bytes(range(16)))
    h = parse_exchange_header(f"2.{token}.{pid}.5.6")
    assert h.counter == 5 and h.flags == 6 and h.pid == bytes(range(16))
    assert h.token.client_id == bytes(16)
    assert h.encode() == f"2.{token}.{pid}.5.6"
    assert parse_exchange_header(f"2.{token}.{pid}.5.22", request=True).flags == 22


@pytest.mark.parametrize(
    "value,kind",
    [
        ("1.{t}.{p}.0.2", "unsupported_version"),
        ("2.{t}.{p}.0", "invalid_header"),
        ("2.{t}.{p}.0.2.1", "invalid_header"),
        ("2.{t}.{p}.00.2", "invalid_header"),
        ("2.{t}.{p}.0.32", "invalid_header"),
        ("2.{t}.{p}.0.256", "invalid_header"),
        ("2.{t}.{p}.0.18", "invalid_header"),  # retry on a response
        ("2.{t}.AAAA.0.2", "invalid_header"),
        ("2.{t}", "invalid_header"),  # discovery form where an exchange is expected
        ("2", "client_id_missing"),
        ("2.AAAA.{p}.0.2", "invalid_client_id"),
    ],
)
def test_exchange_header_rejects(value, kind):
    v = value.format(t=b64encode(bytes(48)), p=b64encode(bytes(16)))
    with pytest.raises(ProtocolError) as info:
        parse_exchange_header(v)
    assert info.value.kind == kind


def test_info_ignores_unknown_keys():
    info = parse_info("versions=1,2;max-pairs=255;chunk-size=65536;max-skip=16;shiny=yes")
    assert info.versions == (1, 2) and info.max_pairs == 255 and info.max_skip == 16
    assert info.extra == {"shiny": "yes"}
    assert info.pairs_per_request == 255  # the pair count is one byte of the transcript
    with pytest.raises(ProtocolError):  # §5: max-pairs is 1-255
        parse_info("versions=2;max-pairs=256;chunk-size=65536;max-skip=16")


def test_nonce_layout():
    assert nonce(3, True, 258) == bytes([3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2])


def test_aad_layout():
    a = aad(direction=2, part=3, flags=6, client_id=bytes(16), pid=b"\x01" * 16, counter=7,
            index=1, final=False, status=200, method="POST", target="")
    assert a[:9] == b"pqrelay/2"
    assert a[9:12] == bytes([2, 3, 6])
    assert len(a) == 9 + 3 + 32 + 8 + 8 + 1 + 2 + 1 + 4 + 2
    assert a.endswith(b"\x04POST\x00\x00")
