"""pqrelay — a Python client for a pqrelay relay (an open MTE-Relay-compatible server).

Brief overview: :class:`RelaySession` discovers the relay (``HEAD /api/mte-relay``), pairs a
pool of X-Wing (ML-KEM-768 + X25519) ratchets (``POST /api/mte-pair``) and sends requests whose
URL, headers and body are sealed with AES-256-GCM; every response is opened and verified
record by record. :class:`RelayResponse` is what a request returns. ``pqrelay.locust`` has a
Locust user class.

Example::

    import pqrelay

    with pqrelay.RelaySession("http://127.0.0.1:8080") as relay:
        r = relay.post("/login", json={"username": "a", "password": "b"})
        print(r.status_code, r.json())

Exceptions::

    PQRelayError
    ├── TransportError
    ├── NotARelayError
    ├── ProtocolError
    │   └── DecodeError
    ├── PairingError
    ├── RelayError
    └── HTTPStatusError

The wire protocol is docs/PROTOCOL.md (version 1) in the pqrelay repository.
"""

from ._exceptions import (
    DecodeError,
    HTTPStatusError,
    NotARelayError,
    PairingError,
    PQRelayError,
    ProtocolError,
    RelayError,
    TransportError,
)
from ._codec import RelayInfo
from ._models import RelayResponse
from ._session import RelaySession

__version__ = "0.1.0"

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
    "RelayError",
    "HTTPStatusError",
]

for _name in __all__[1:]:
    globals()[_name].__module__ = "pqrelay"
del _name
