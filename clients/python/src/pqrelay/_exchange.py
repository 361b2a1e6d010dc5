"""One exchange's sealing context (PROTOCOL.md §7, §8): which key, nonce and AAD each sealed
item of a request and its response uses."""

from __future__ import annotations

from dataclasses import dataclass

from ._codec import (
    DIR_REQUEST,
    DIR_RESPONSE,
    MAX_EH_SIZE,
    PART_BODY,
    PART_HEADERS,
    PART_URL,
    aad,
    b64decode,
    b64encode,
    decode_header_list,
    encode_header_list,
    nonce,
)
from ._exceptions import ProtocolError
from ._keys import ExchangeKeys, open_, seal
from ._stream import AadFn

__all__ = ["Exchange"]


@dataclass(frozen=True)
class Exchange:
    """Everything bound into the AADs of exchange ``keys.counter`` on pair ``pid``."""

    client_id: bytes
    pid: bytes
    keys: ExchangeKeys
    method: str

    @property
    def counter(self) -> int:
        return self.keys.counter

    def _aad(
        self,
        direction: int,
        part: int,
        flags: int,
        *,
        index: int = 0,
        final: bool = True,
        status: int = 0,
        target: str = "",
    ) -> bytes:
        return aad(
            direction=direction,
            part=part,
            flags=flags,
            client_id=self.client_id,
            pid=self.pid,
            counter=self.counter,
            index=index,
            final=final,
            status=status,
            method=self.method,
            target=target,
        )

    # -- request (sealed with kq_n) ---------------------------------------------------------

    def seal_url(self, flags: int, path_and_query: str) -> str:
        """§8.2: ``target = "/" || b64(seal(kq_n, part=url, path-and-query))``."""
        key = self.keys.request_key
        sealed = seal(
            key,
            nonce(PART_URL, True, 0),
            path_and_query.encode("utf-8"),
            self._aad(DIR_REQUEST, PART_URL, flags),
        )
        return "/" + b64encode(sealed)

    def seal_headers(self, flags: int, headers: list[tuple[str, str]], plain_target: str) -> str:
        """The ``x-mte-relay-eh`` value. ``plain_target`` is the request-target as sent when
        the URL is not sealed, else ``""`` (§7, ``target``)."""
        sealed = seal(
            self.keys.request_key,
            nonce(PART_HEADERS, True, 0),
            encode_header_list(headers),
            self._aad(DIR_REQUEST, PART_HEADERS, flags, target=plain_target),
        )
        return b64encode(sealed)

    def request_body_aad(self, flags: int) -> AadFn:
        def aad_fn(index: int, final: bool) -> bytes:
            return self._aad(DIR_REQUEST, PART_BODY, flags, index=index, final=final)

        return aad_fn

    # -- response (sealed with ks_n) --------------------------------------------------------

    def open_headers(self, flags: int, status: int, value: str | None) -> list[tuple[str, str]]:
        if value is None:
            raise ProtocolError("sealed response lacks x-mte-relay-eh", "invalid_header")
        if len(value) > MAX_EH_SIZE:
            raise ProtocolError("x-mte-relay-eh too large", "headers_too_large")
        sealed = b64decode(value, "decode_failure")
        plaintext = open_(
            self.keys.response_key,
            nonce(PART_HEADERS, True, 0),
            sealed,
            self._aad(DIR_RESPONSE, PART_HEADERS, flags, status=status),
        )
        return decode_header_list(plaintext, request=False)

    def response_body_aad(self, flags: int, status: int) -> AadFn:
        def aad_fn(index: int, final: bool) -> bytes:
            return self._aad(
                DIR_RESPONSE, PART_BODY, flags, index=index, final=final, status=status
            )

        return aad_fn
