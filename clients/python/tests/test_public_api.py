import pytest

import pqrelay


def test_public_surface_is_exact():
    assert pqrelay.__all__ == [
        "__version__",
        "RelaySession",
        "RelayResponse",
        "RelayInfo",
        "PQRelayError",
        "TransportError",
        "NotARelayError",
        "ProtocolError",
        "DecodeError",
        "PairingError",
        "RelayKeyNotTrustedError",
        "PairingNotConfirmedError",
        "RelayError",
        "OutcomeUnknownError",
        "HTTPStatusError",
    ]
    public = {n for n in dir(pqrelay) if not n.startswith("_")}
    assert public - {"locust"} == set(pqrelay.__all__) - {"__version__"}


def test_public_names_claim_the_package():
    for name in pqrelay.__all__[1:]:
        assert getattr(pqrelay, name).__module__ == "pqrelay"


def test_exception_tree():
    P = pqrelay.PQRelayError
    for name in [
        "TransportError", "NotARelayError", "ProtocolError", "PairingError", "RelayError",
        "OutcomeUnknownError", "HTTPStatusError",
    ]:
        assert getattr(pqrelay, name).__bases__ == (P,), name
    assert pqrelay.DecodeError.__bases__ == (pqrelay.ProtocolError,)
    assert pqrelay.RelayKeyNotTrustedError.__bases__ == (pqrelay.PairingError,)
    assert pqrelay.PairingNotConfirmedError.__bases__ == (pqrelay.PairingError,)
    # an outcome-unknown is no relay error: catching RelayError must not swallow it
    assert not issubclass(pqrelay.OutcomeUnknownError, pqrelay.RelayError)


def test_exception_tree_is_drawn_in_the_docstrings():
    from pqrelay import _exceptions

    for doc in (pqrelay.__doc__, _exceptions.__doc__):
        for name in pqrelay.__all__[1:]:
            if name.endswith("Error"):
                assert name in doc, name


def test_client_side_error_codes():
    # PROTOCOL.md §11.1: failures only a client detects, under the same codes in every client
    assert pqrelay.OutcomeUnknownError.code == "outcome_unknown"
    assert pqrelay.PairingNotConfirmedError.code == "pairing_not_confirmed"
    assert pqrelay.RelayKeyNotTrustedError.code == "relay_key_not_trusted"


def test_session_pins_are_checked():
    s = pqrelay.RelaySession("http://127.0.0.1:9", pin="sha256:8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc")
    assert s.pins == ["sha256:8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc"] == s.trusted_keys
    assert s.relay_fingerprint is None
    for bad in ["8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc", "sha256:abc", []]:
        with pytest.raises(ValueError):
            pqrelay.RelaySession("http://127.0.0.1:9", pin=bad)
    with pytest.raises(ValueError):
        s.trusted_keys = []  # a pinned session trusts exactly its pins
    t = pqrelay.RelaySession("http://127.0.0.1:9")
    assert t.pins is None and t.trusted_keys == []
    t.trusted_keys = ["sha256:8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc"]
    assert t.trusted_keys == ["sha256:8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc"]


def test_locust_module_surface():
    # In a subprocess: importing locust monkey-patches the whole interpreter with gevent.
    import subprocess
    import sys

    code = "import pqrelay.locust as pl; print(pl.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['RelayUser', 'RelayLocustSession']"
