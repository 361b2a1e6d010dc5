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
        "RelayError",
        "HTTPStatusError",
    ]
    public = {n for n in dir(pqrelay) if not n.startswith("_")}
    assert public - {"locust"} == set(pqrelay.__all__) - {"__version__"}


def test_public_names_claim_the_package():
    for name in pqrelay.__all__[1:]:
        assert getattr(pqrelay, name).__module__ == "pqrelay"


def test_exception_tree():
    P = pqrelay.PQRelayError
    for name in ["TransportError", "NotARelayError", "ProtocolError", "PairingError", "RelayError", "HTTPStatusError"]:
        assert issubclass(getattr(pqrelay, name), P)
    assert issubclass(pqrelay.DecodeError, pqrelay.ProtocolError)


def test_locust_module_surface():
    # In a subprocess: importing locust monkey-patches the whole interpreter with gevent.
    import subprocess
    import sys

    code = "import pqrelay.locust as pl; print(pl.__all__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['RelayUser', 'RelayLocustSession']"
