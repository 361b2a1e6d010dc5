"""Locust support: :class:`RelayUser`, whose ``self.client`` speaks the pqrelay protocol.

It reports to Locust's statistics like ``HttpUser`` does: every request fires Locust's
``request`` event (``request_type``, ``name``, ``response_time``, ``response_length``,
``exception``, ``context``), responses with status >= 400 and client errors (including
:class:`~pqrelay.OutcomeUnknownError` and the hard trust errors) count as failures,
and ``catch_response=True`` gives a context manager with ``success()``/``failure()``.
Discovery and pairing requests are reported too (``HEAD /api/mte-relay``,
``POST /api/mte-pair``), so pairing cost shows in the statistics.

Example::

    from locust import between, task
    from pqrelay.locust import RelayUser

    class Visitor(RelayUser):
        wait_time = between(1, 5)

        @task
        def login(self):
            self.client.post("/login", json={"username": "u", "password": "p"})

Requires the ``locust`` extra: ``pip install 'pqrelay[locust]'``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from locust import User
from locust.env import Environment
from locust.event import EventHook as LocustEventHook
from locust.exception import LocustError

from ._exceptions import PQRelayError
from ._models import RelayResponse
from ._session import RelaySession

__all__ = ["RelayUser", "RelayLocustSession"]


class _CatchResponseError(Exception):
    """A failure reported through ``response.failure(...)``."""


class RelayResponseContextManager:
    """What :meth:`RelayLocustSession.request` returns: the :class:`RelayResponse` (its
    attributes are reachable directly) plus Locust's ``success()``/``failure()`` when used as
    ``with client.get(..., catch_response=True) as r:``. ``status_code`` is 0 and ``error``
    is set when the request failed before a response existed."""

    def __init__(
        self,
        response: RelayResponse | None,
        error: BaseException | None,
        request_event: LocustEventHook,
        meta: dict[str, Any],
        catch_response: bool,
    ) -> None:
        self._response = response
        self.error = error
        self._event = request_event
        self.request_meta = meta
        self._catch = catch_response
        self._manual: bool | BaseException | None = None
        self._reported = False

    def __getattr__(self, name: str) -> Any:
        response = self.__dict__.get("_response")
        if response is None:
            raise AttributeError(f"request failed ({self.error!r}); no response attribute {name}")
        return getattr(response, name)

    @property
    def status_code(self) -> int:
        return 0 if self._response is None else self._response.status_code

    def success(self) -> None:
        self._manual = True

    def failure(self, exc: BaseException | str) -> None:
        self._manual = exc if isinstance(exc, BaseException) else _CatchResponseError(exc)

    def __enter__(self) -> RelayResponseContextManager:
        if not self._catch:
            raise LocustError("a with-block needs catch_response=True")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is not None and self._manual is None:
            if isinstance(exc, PQRelayError):
                self.request_meta["exception"] = exc
                self._report()
                return True
            return False
        self._report()
        return exc is None

    def _outcome(self) -> BaseException | None:
        if self._manual is True:
            return None
        if isinstance(self._manual, BaseException):
            return self._manual
        if self.error is not None:
            return self.error
        if self._response is not None and self._response.status_code >= 400:
            r = self._response
            code = f" ({r.relay_error})" if r.relay_error else ""
            return _CatchResponseError(f"{r.status_code}{code} {self.request_meta['name']}")
        return None

    def _report(self) -> None:
        if self._reported:
            return
        self._reported = True
        self.request_meta["exception"] = self._outcome()
        self._event.fire(**self.request_meta)


class RelayLocustSession(RelaySession):
    """A :class:`RelaySession` that reports every request to Locust's ``request`` event."""

    def __init__(
        self,
        relay_url: str,
        *,
        request_event: LocustEventHook,
        user: User | None = None,
        **kwargs: Any,
    ) -> None:
        self._request_event = request_event
        self._user = user
        super().__init__(relay_url, event_hook=self._report_internal, **kwargs)

    def _context(self) -> dict[str, Any]:
        return self._user.context() if self._user is not None else {}

    def _report_internal(
        self, kind: str, name: str, ms: float, length: int, exc: BaseException | None
    ) -> None:
        self._request_event.fire(
            request_type=kind,
            name=name,
            response_time=ms,
            response_length=length,
            exception=exc,
            context=self._context(),
            url=self.relay_url + name,
            response=None,
        )

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        context: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> RelayResponseContextManager:
        """Like :meth:`RelaySession.request` plus Locust's ``name``, ``catch_response`` and
        ``context``. Protocol and transport errors become failures (status_code 0)."""
        start_time = time.time()
        start = time.perf_counter()
        response: RelayResponse | None = None
        error: BaseException | None = None
        try:
            response = super().request(method, url, **kwargs)
        except PQRelayError as exc:
            error = exc
        ms = (time.perf_counter() - start) * 1000.0
        length = 0
        if response is not None and not kwargs.get("stream", False):
            length = len(response.content)
        meta: dict[str, Any] = {
            "request_type": method.upper(),
            "name": name or url,
            "response_time": ms,
            "response_length": length,
            "response": response,
            "context": {**self._context(), **(context or {})},
            "exception": None,
            "start_time": start_time,
            "url": self.relay_url + url,
        }
        rcm = RelayResponseContextManager(response, error, self._request_event, meta, catch_response)
        if not catch_response:
            rcm._report()
        return rcm

    def get(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> RelayResponseContextManager:  # type: ignore[override]
        return self.request("DELETE", url, **kwargs)


class RelayUser(User):
    """A Locust user whose ``self.client`` is a :class:`RelayLocustSession` on ``host``.

    Class attributes configure the session: ``number_of_pairs``, ``max_pairs``,
    ``encode_urls``, ``encode_headers``, ``pin`` (the relay's fingerprint, or a list; default
    ``None``: each user trusts the key it is first shown), ``timeout``, ``verify``.
    """

    abstract = True
    pin: str | Sequence[str] | None = None
    number_of_pairs: int = 5
    max_pairs: int | None = None
    encode_urls: bool = True
    encode_headers: bool | Sequence[str] = True
    timeout: float | None = 30.0
    verify: bool | str = True

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if self.host is None:
            raise LocustError(
                "You must specify the relay URL, with --host or a host attribute on the user class"
            )
        self.client = RelayLocustSession(
            self.host,
            request_event=environment.events.request,
            user=self,
            number_of_pairs=self.number_of_pairs,
            max_pairs=self.max_pairs,
            encode_urls=self.encode_urls,
            encode_headers=self.encode_headers,
            pin=self.pin,
            timeout=self.timeout,
            verify=self.verify,
        )
