"""CVM role credentials against a fake instance metadata service over real HTTP.

The fake issues a new temporary key on every successful request, so which key ``get()`` returns
tells whether it refreshed; a shared fake clock moves expiry and backoff without sleeping.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from exporter import tiw
from exporter.selfmetrics import CredentialsCollector
from exporter.simulator import DEFAULT_SDK_APP_ID, Simulator
from exporter.tencentcloud.chain import resolve_chain
from exporter.tencentcloud.client import RetryPolicy, TencentCloudClient
from exporter.tencentcloud.credentials import CredentialError
from exporter.tencentcloud.cvm_role import CREDENTIALS_PATH, METADATA_URL_ENV, CvmRoleCredentials
from exporter.tencentcloud.errors import ApiError, CredentialFailure
from tests.fakes import FakeClock
from tests.harness import eventually

ROLE = "tiw-exporter-role"
LIFETIME = 3600
MARGIN = 300
START = 1_700_000_000.0


class FakeMetadata:
    """The metadata endpoint for ``ROLE``: key n is ``AKIDtmp{n}``/``tmpkey{n}``/``token{n}``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lifetime = LIFETIME
        self.requests = 0
        self.issued = 0
        self.status = 200
        self.body: dict[str, Any] | bytes | None = None  # overrides the issued key when set
        self.delay = 0.0  # latency of every answer
        self.gate: threading.Event | None = None  # when set, answers wait until it is released
        self.attached_role: str | None = None  # what the role list (CREDENTIALS_PATH alone) names
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = fake.answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def answer(self, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
        time.sleep(self.delay)
        if self.gate is not None:
            self.gate.wait(10)
        with self._lock:
            if path == CREDENTIALS_PATH and self.attached_role:
                return 200, self.attached_role.encode()
            if path != CREDENTIALS_PATH + ROLE:
                return 404, b"<html>not found</html>"
            if self.status != 200:
                return self.status, b"upstream trouble"
            if isinstance(self.body, bytes):
                return 200, self.body
            if self.body is not None:
                return 200, json.dumps(self.body).encode()
            self.issued += 1
            expires = int(self.clock() + self.lifetime)
            document = {
                "TmpSecretId": f"AKIDtmp{self.issued}",
                "TmpSecretKey": f"tmpkey{self.issued}",
                "Token": f"token{self.issued}",
                "ExpiredTime": expires,
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)),
                "Code": "Success",
            }
            return 200, json.dumps(document).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def metadata(clock: FakeClock) -> Iterator[FakeMetadata]:
    fake = FakeMetadata(clock)
    yield fake
    fake.close()


@pytest.fixture
def real_metadata() -> Iterator[FakeMetadata]:
    fake = FakeMetadata(time.time)
    yield fake
    fake.close()


@pytest.fixture
def make_provider(metadata: FakeMetadata, clock: FakeClock) -> Iterator[Callable[..., CvmRoleCredentials]]:
    made: list[CvmRoleCredentials] = []

    def make(role: str = ROLE, **options: Any) -> CvmRoleCredentials:
        options.setdefault("base_url", metadata.url)
        options.setdefault("clock", clock)
        made.append(CvmRoleCredentials(role, refresh_margin=MARGIN, **options))
        return made[-1]

    yield make
    for provider in made:
        provider.close()


def test_key_is_cached_and_refreshed_before_it_expires(make_provider, metadata, clock):
    provider = make_provider()
    first = provider.get()
    assert (first.secret_id, first.secret_key, first.token) == ("AKIDtmp1", "tmpkey1", "token1")
    clock.advance(LIFETIME - MARGIN - 1)
    assert provider.get() is first
    assert metadata.requests == 1
    clock.advance(2)  # now inside the refresh margin: still valid, but renewed
    assert provider.get().secret_id == "AKIDtmp2"
    assert provider.get().token == "token2"
    assert metadata.requests == 2


def test_repr_and_errors_never_show_secrets(make_provider, metadata, clock):
    provider = make_provider()
    credential = provider.get()
    for text in (repr(provider), str(provider), repr(credential)):
        assert "tmpkey1" not in text and "token1" not in text
    metadata.status = 500
    clock.advance(LIFETIME + 1)
    with pytest.raises(CredentialError) as caught:
        provider.get()
    assert "tmpkey" not in str(caught.value) and "token" not in str(caught.value)


def test_failed_refresh_keeps_the_valid_key_and_backs_off_exponentially(make_provider, metadata, clock, caplog):
    provider = make_provider(min_backoff=1.0, max_backoff=60.0)
    first = provider.get()
    metadata.status = 503
    clock.advance(LIFETIME - MARGIN)  # refresh due, key valid for MARGIN more seconds
    caplog.set_level(logging.DEBUG, logger="exporter.tencentcloud.cvm_role")
    for _ in range(240):  # 60 s of calls, 4 per second
        assert provider.get() is first
        clock.advance(0.25)
    # Attempts at +0, +1, +3, +7, +15, +31 (the next one, +63, is past the window).
    assert metadata.requests - 1 == 6
    assert provider.consecutive_failures == 6
    assert provider.expires_at == START + LIFETIME
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "HTTP 503" in warnings[0].getMessage()

    metadata.status = 200
    clock.advance(5)  # past the +63 retry
    assert provider.get().secret_id == "AKIDtmp2"
    assert any("refreshed after 6 failed" in r.getMessage() for r in caplog.records)
    assert provider.consecutive_failures == 0


def test_expired_key_without_refresh_raises_naming_role_and_cause(make_provider, metadata, clock):
    provider = make_provider(min_backoff=10.0, max_backoff=10.0)
    provider.get()
    metadata.status = 500
    clock.advance(LIFETIME + 1)
    with pytest.raises(CredentialError, match=rf"CVM role {ROLE}: no valid temporary key .*HTTP 500"):
        provider.get()
    asked = metadata.requests
    for _ in range(20):  # while backing off, callers fail fast without hammering the metadata service
        with pytest.raises(CredentialError, match="HTTP 500"):
            provider.get()
    assert metadata.requests == asked
    metadata.status = 200
    clock.advance(10)
    assert provider.get().secret_id == "AKIDtmp2"


def test_role_not_attached_is_reported_at_the_first_get(make_provider):
    provider = make_provider(role="some-other-role")
    with pytest.raises(CredentialError, match=r"some-other-role.*HTTP 404 \(is the role attached"):
        provider.get()


@pytest.mark.parametrize(
    ("body", "cause"),
    [
        (b"<html>proxy login</html>", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        ({"Code": "Failure", "TmpSecretId": "a", "TmpSecretKey": "b", "Token": "c", "ExpiredTime": START + 99},
         "Code 'Failure'"),
        ({"Code": "Success", "TmpSecretId": "a", "TmpSecretKey": "b", "ExpiredTime": START + 99},
         "lacks a string Token"),
        ({"Code": "Success", "TmpSecretId": "a", "TmpSecretKey": "b", "Token": "c"}, "lacks a usable ExpiredTime"),
        ({"Code": "Success", "TmpSecretId": "a", "TmpSecretKey": "b", "Token": "c", "ExpiredTime": START - 5},
         "expired 5s ago"),
    ],
)
def test_unusable_answers_are_credential_errors(make_provider, metadata, body, cause):
    metadata.body = body
    with pytest.raises(CredentialError, match=cause):
        make_provider().get()


def test_expiration_is_used_when_expired_time_is_absent(make_provider, metadata, clock):
    metadata.body = {"TmpSecretId": "a", "TmpSecretKey": "b", "Token": "c",
                     "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(START + 1000))}
    provider = make_provider()
    provider.get()
    clock.advance(1000 - MARGIN - 1)
    provider.get()
    assert metadata.requests == 1
    clock.advance(2)
    provider.get()
    assert metadata.requests == 2


def test_short_lived_keys_are_refreshed_halfway_not_on_every_call(make_provider, metadata, clock):
    metadata.lifetime = 100  # shorter than the 300 s margin
    provider = make_provider()
    provider.get()
    clock.advance(49)
    provider.get()
    assert metadata.requests == 1
    clock.advance(2)
    assert provider.get().secret_id == "AKIDtmp2"


def test_unreachable_metadata_service(clock):
    with socket.socket() as probe:  # a port with nothing listening: bound, then closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = CvmRoleCredentials(ROLE, f"http://127.0.0.1:{port}", clock=clock)
    with pytest.raises(CredentialError, match="unreachable"):
        provider.get()
    provider.close()


def test_one_refresh_at_a_time_while_others_use_the_cached_key(make_provider, metadata, clock):
    provider = make_provider()
    first = provider.get()
    clock.advance(LIFETIME - MARGIN + 1)
    metadata.gate = threading.Event()  # the refresh hangs until released
    refresher = threading.Thread(target=provider.get)
    refresher.start()
    eventually(lambda: metadata.requests >= 2, interval=0.01)
    assert provider.get() is first  # does not wait for the slow refresh in flight...
    assert refresher.is_alive()  # ...which is still hanging: get() returned without it
    metadata.gate.set()
    refresher.join(5)
    assert provider.get().secret_id == "AKIDtmp2"
    assert metadata.requests == 2


def test_callers_without_a_key_wait_for_a_single_fetch(make_provider, metadata):
    provider = make_provider()
    metadata.delay = 0.3
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(provider.get().secret_id)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["AKIDtmp1"] * 8
    assert metadata.requests == 1


def test_metadata_url_from_the_environment(monkeypatch, real_metadata):
    monkeypatch.setenv(METADATA_URL_ENV, real_metadata.url + "/")
    provider = resolve_chain(env={}, profile_paths=(), cvm_role=ROLE)
    assert isinstance(provider, CvmRoleCredentials)
    assert provider.url == real_metadata.url + CREDENTIALS_PATH + ROLE
    assert provider.get().secret_id == "AKIDtmp1"
    provider.close()


@pytest.mark.parametrize("role", ["", "a/b", "../../user-data", "x" * 129])
def test_role_names_that_could_not_be_cam_roles_are_refused(role):
    with pytest.raises(CredentialError, match="not a valid CAM role name"):
        CvmRoleCredentials(role, "http://127.0.0.1:9")


# --------------------------------------------------------------------------- end to end


def run_against_simulator(metadata: FakeMetadata, tokens: dict[str, str]) -> Any:
    sim = Simulator(credentials={"AKIDtmp1": "tmpkey1"}, tokens=tokens).start()
    client = TencentCloudClient(CvmRoleCredentials(ROLE, metadata.url), endpoint=sim.url,
                                retry=RetryPolicy(attempts=1))
    try:
        task_id = sim.add_task(DEFAULT_SDK_APP_ID)
        return tiw.describe_whiteboard_push(client, DEFAULT_SDK_APP_ID, task_id)
    finally:
        client.close()
        sim.close()


def test_client_signs_with_the_role_key_and_sends_its_token(real_metadata):
    task = run_against_simulator(real_metadata, tokens={"AKIDtmp1": "token1"})
    assert task.sdk_app_id == DEFAULT_SDK_APP_ID


def test_simulator_refuses_a_wrong_token(real_metadata):
    with pytest.raises(ApiError) as caught:
        run_against_simulator(real_metadata, tokens={"AKIDtmp1": "another-token"})
    assert caught.value.code == "AuthFailure.TokenFailure"


def test_no_role_key_is_a_counted_client_error(real_metadata):
    real_metadata.status = 500
    with pytest.raises(CredentialFailure) as caught:
        run_against_simulator(real_metadata, tokens={"AKIDtmp1": "token1"})
    assert caught.value.code == "ClientError.Credential"
    assert ROLE in caught.value.message


def test_refresh_failures_and_expiry_are_exported(make_provider, metadata, clock):
    provider = make_provider(min_backoff=1.0, max_backoff=60.0)
    provider.get()
    registry = CollectorRegistry()
    registry.register(CredentialsCollector(lambda: [("main", provider)]))
    metadata.status = 503
    clock.advance(LIFETIME - MARGIN)
    provider.get()
    clock.advance(2)
    provider.get()
    assert registry.get_sample_value("tiw_exporter_credential_refresh_failures", {"account": "main"}) == 2
    assert registry.get_sample_value("tiw_exporter_credential_expiry_timestamp_seconds",
                                     {"account": "main"}) == START + LIFETIME
