"""pqrelay — a Python client for a pqrelay relay (an open MTE-Relay-compatible server).

Brief overview: :class:`RelaySession` discovers the relay (``HEAD /api/mte-relay``) and its
relay keys, picks one it trusts (a pin, or trust on first use), pairs a pool of ratchets with
one X-Wing (ML-KEM-768 + X25519) exchange authenticated by that key (``POST /api/mte-pair``)
and sends requests whose URL, headers and body are sealed with AES-256-GCM; every response is
opened and verified record by record, every relay error's tag is checked, and a request that
must not run twice is never sent again unless the relay proves it did not run.
:class:`RelayResponse` is what a request returns. ``pqrelay.locust`` has a Locust user class.

Example::

    import pqrelay

    pin = "sha256:8L-AvIcnXWwRTzAUAyqhsNDWZeqNLy-_w29n6uk8RWc"   # the relay's fingerprint
    with pqrelay.RelaySession("https://relay.example", pin=pin) as relay:
        r = relay.post("/login", json={"username": "a", "password": "b"})
        print(r.status_code, r.json())

Exceptions::

    PQRelayError
    ├── TransportError
    ├── NotARelayError
    ├── ProtocolError
    │   └── DecodeError
    ├── PairingError
    │   ├── RelayKeyNotTrustedError
    │   └── PairingNotConfirmedError
    ├── RelayError
    ├── OutcomeUnknownError
    └── HTTPStatusError

The wire protocol is docs/PROTOCOL.md (version 2) in the pqrelay repository.
"""

from ._exceptions import (
    DecodeError,
    HTTPStatusError,
    NotARelayError,
    OutcomeUnknownError,
    PairingError,
    PairingNotConfirmedError,
    PQRelayError,
    ProtocolError,
    RelayError,
    RelayKeyNotTrustedError,
    TransportError,
)
from ._codec import RelayInfo
from ._models import RelayResponse
from ._session import RelaySession

__version__ = "0.2.0"

__all__ = [
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

for _name in __all__[1:]:
    globals()[_name].__module__ = "pqrelay"
del _name
