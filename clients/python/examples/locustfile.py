"""Load shapes of the vendor's MTE Relay load tests, through a pqrelay relay.

    PQRELAY_PIN=sha256:... locust -f examples/locustfile.py --headless -u 20 -r 10 -t 60s \
        --host http://127.0.0.1:8080

``PQRELAY_PIN`` (optional) is the relay's fingerprint (``pqrelay check-config`` prints it);
without it each simulated user trusts the key it is first shown. The relay must proxy to the
demo upstream (``pqrelay demo-upstream --port N`` with
``UPSTREAM=http://127.0.0.1:N``, or ``pqrelay demo``). Tasks:

* echo: ``GET /api/mte-echo/<msg>`` — a relay route answered by the relay itself, plain;
* login: ``POST /login`` with a JSON {username, password} body, sealed;
* 1, 10, 25 and 50 KB JSON posts to ``/upload``, checked against the size and SHA-256 the
  upstream reports.

Each simulated user waits 1–5 s between tasks and keeps its own pool of pairs.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import string

from locust import between, task

from pqrelay.locust import RelayUser


def json_body(kilobytes: int) -> bytes:
    """A JSON document of exactly ``kilobytes`` * 1024 bytes."""
    size = kilobytes * 1024
    skeleton = json.dumps({"data": ""}, separators=(",", ":"))
    filler = "".join(random.choices(string.ascii_letters + string.digits, k=size - len(skeleton)))
    out = json.dumps({"data": filler}, separators=(",", ":")).encode()
    assert len(out) == size
    return out


class RelayDemoUser(RelayUser):
    wait_time = between(1, 5)
    number_of_pairs = 5
    pin = os.environ.get("PQRELAY_PIN") or None

    @task(2)
    def echo(self) -> None:
        msg = "".join(random.choices(string.ascii_lowercase, k=8))
        with self.client.get(
            f"/api/mte-echo/{msg}", plain=True, name="/api/mte-echo/[msg]", catch_response=True
        ) as r:
            if r.status_code == 200 and r.json().get("echo") != msg:
                r.failure("echo mismatch")

    @task(3)
    def login(self) -> None:
        with self.client.post(
            "/login", json={"username": "demo", "password": "demo"}, catch_response=True
        ) as r:
            if r.status_code == 200 and not isinstance(r.json(), dict):
                r.failure("login answer is not a JSON object")

    def _post_json(self, kilobytes: int) -> None:
        body = json_body(kilobytes)
        digest = hashlib.sha256(body).hexdigest()
        with self.client.post(
            "/upload",
            content=body,
            headers={"content-type": "application/json"},
            name=f"/upload [{kilobytes} KB JSON]",
            catch_response=True,
        ) as r:
            if r.status_code == 200:
                got = r.json()
                if got.get("size") != len(body) or got.get("sha256") != digest:
                    r.failure(f"upload mismatch: {got}")

    @task(2)
    def post_1kb(self) -> None:
        self._post_json(1)

    @task(2)
    def post_10kb(self) -> None:
        self._post_json(10)

    @task(1)
    def post_25kb(self) -> None:
        self._post_json(25)

    @task(1)
    def post_50kb(self) -> None:
        self._post_json(50)
