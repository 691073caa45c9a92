"""``--web-config-file``: real TLS handshakes and basic auth against a running ExporterHTTPServer.

Certificates come from ``trustme``; clients are ``requests`` (or a bare ``ssl`` socket where a
protocol version must be forced). bcrypt hashes use cost 4 so the suite stays fast.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import trustme
from cryptography.hazmat.primitives import serialization
from prometheus_client import CollectorRegistry

from exporter.callbacks import sign
from exporter.config import build_settings
from exporter.exposition import Exposition
from exporter.runtime import Exporter
from exporter.simulator import Simulator
from exporter.store import TaskStore
from exporter.tencentcloud.credentials import Credential, StaticCredentials
from exporter.web import auth
from exporter.web.http import ExporterHTTPServer
from exporter.web.routes import Routes
from exporter.web.webconfig import WebConfigError, WebSecurity, load_web_config

PASSWORD = "correct horse battery staple"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


class Pki:
    """Certificates and keys written as PEM files under one directory."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server_ca = trustme.CA()
        self.client_ca = trustme.CA()

    def server_files(self, ca: trustme.CA | None = None, name: str = "server") -> tuple[Path, Path]:
        leaf = (ca or self.server_ca).issue_cert("127.0.0.1", "localhost")
        cert, key = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        return cert, key

    def ca_file(self, ca: trustme.CA, name: str) -> Path:
        path = self.dir / f"{name}.pem"
        ca.cert_pem.write_to_path(path)
        return path

    def client_file(self, ca: trustme.CA, name: str) -> str:
        """Key and certificate in one file, as ``requests``' ``cert=`` takes it."""
        path = self.dir / f"{name}.pem"
        ca.issue_cert("scraper@example.com").private_key_and_cert_chain_pem.write_to_path(path)
        return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def write_config(pki: Pki, text: str, name: str = "web.yml") -> Path:
    path = pki.dir / name
    path.write_text(text, encoding="utf-8")
    return path


def tls_config(pki: Pki, extra: str = "", *, users: bool = False) -> Path:
    """A config serving ``server.crt``; ``extra`` lines go into tls_server_config."""
    pki.server_files()
    text = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n" + extra
    if users:
        text += f"basic_auth_users:\n  prometheus: {HASH}\n"
    return write_config(pki, text)


@pytest.fixture
def serve() -> Iterator[Callable[[WebSecurity], str]]:
    servers: list[ExporterHTTPServer] = []

    def start(security: WebSecurity) -> str:
        store = TaskStore()
        app = Routes(store, Exposition(store, CollectorRegistry()), ready=lambda: True, authorize=security.authorize)
        servers.append(ExporterHTTPServer(("127.0.0.1", 0), app, ssl_context=security.ssl_context).start())
        return servers[-1].url

    yield start
    for server in servers:
        server.stop()


def get(url: str, path: str = "/metrics", **options) -> requests.Response:
    return requests.get(url + path, timeout=5, **options)


# --------------------------------------------------------------------------- TLS


def test_tls_is_served_with_the_configured_certificate(pki, serve):
    url = serve(WebSecurity(tls_config(pki)))
    assert url.startswith("https://")
    answer = get(url, verify=pki.ca_file(pki.server_ca, "ca"))
    assert answer.status_code == 200 and "tiw_exporter_tracked_tasks" in answer.text
    with pytest.raises(requests.exceptions.SSLError):  # a client that does not trust our CA
        get(url, verify=pki.ca_file(trustme.CA(), "unrelated-ca"))


def test_plain_http_to_the_tls_port_fails(pki, serve):
    url = serve(WebSecurity(tls_config(pki)))
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url.replace("https://", "http://"))
    assert get(url, "/-/healthy", verify=pki.ca_file(pki.server_ca, "ca")).status_code == 200  # still serving


def test_require_and_verify_client_cert(pki, serve):
    pki.ca_file(pki.client_ca, "clients-ca")
    url = serve(WebSecurity(tls_config(pki, "  client_auth_type: RequireAndVerifyClientCert\n"
                                            "  client_ca_file: clients-ca.pem\n")))
    ca = pki.ca_file(pki.server_ca, "ca")
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url, verify=ca)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url, verify=ca, cert=pki.client_file(trustme.CA(), "stranger"))
    assert get(url, verify=ca, cert=pki.client_file(pki.client_ca, "scraper")).status_code == 200


def test_verify_client_cert_if_given(pki, serve):
    pki.ca_file(pki.client_ca, "clients-ca")
    url = serve(WebSecurity(tls_config(pki, "  client_auth_type: VerifyClientCertIfGiven\n"
                                            "  client_ca_file: clients-ca.pem\n")))
    ca = pki.ca_file(pki.server_ca, "ca")
    assert get(url, verify=ca).status_code == 200
    assert get(url, verify=ca, cert=pki.client_file(pki.client_ca, "scraper")).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url, verify=ca, cert=pki.client_file(trustme.CA(), "stranger"))


def handshake(url: str, cafile: Path, maximum: ssl.TLSVersion) -> str:
    """The protocol version a client capped at ``maximum`` negotiates (raises SSLError if none)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.maximum_version = maximum
    host, port = url.removeprefix("https://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        return tls.version() or ""


def test_min_version_tls13_refuses_a_tls12_only_client(pki, serve):
    ca = pki.ca_file(pki.server_ca, "ca")
    default_url = serve(WebSecurity(tls_config(pki)))
    assert handshake(default_url, ca, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"  # the default minimum is TLS12
    strict_url = serve(WebSecurity(write_config(pki, "tls_server_config:\n  cert_file: server.crt\n"
                                                     "  key_file: server.key\n  min_version: TLS13\n", "strict.yml")))
    with pytest.raises(ssl.SSLError):
        handshake(strict_url, ca, ssl.TLSVersion.TLSv1_2)
    assert handshake(strict_url, ca, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_legacy_min_version_is_accepted_with_a_warning(pki, caplog):
    config = load_web_config(tls_config(pki, "  min_version: TLS10\n"))
    assert config.tls is not None and config.tls.min_version == "TLS10"
    assert any("min_version TLS10 allows insecure" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- basic auth


def test_basic_auth_guards_everything_but_the_probes(pki, serve):
    url = serve(WebSecurity(tls_config(pki, users=True)))
    ca = pki.ca_file(pki.server_ca, "ca")
    for credentials in (None, ("prometheus", "wrong"), ("nobody", PASSWORD), ("prometheus", PASSWORD + "x" * 80)):
        answer = get(url, verify=ca, auth=credentials)
        assert answer.status_code == 401, credentials
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="tiw-exporter"'
    assert get(url, "/", verify=ca).status_code == 401
    assert get(url, "/api/v1/tasks", verify=ca, headers={"Authorization": "Basic !!notbase64"}).status_code == 401
    assert get(url, verify=ca, auth=("prometheus", PASSWORD)).status_code == 200
    assert get(url, "/-/healthy", verify=ca).status_code == 200
    assert get(url, "/-/ready", verify=ca).status_code == 200  # orchestrators' probes send no credentials


def test_basic_auth_without_tls(pki, serve):
    url = serve(WebSecurity(write_config(pki, f"basic_auth_users:\n  prometheus: '{HASH}'\n")))
    assert url.startswith("http://")
    assert get(url).status_code == 401
    assert get(url, auth=("prometheus", PASSWORD)).status_code == 200


def test_bcrypt_runs_once_per_login_and_also_for_unknown_users(pki, serve, monkeypatch):
    calls: list[bytes] = []
    real_checkpw = bcrypt.checkpw

    def counting_checkpw(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real_checkpw(password, hashed)

    monkeypatch.setattr(auth.bcrypt, "checkpw", counting_checkpw)
    security = WebSecurity(write_config(pki, f"basic_auth_users:\n  prometheus: '{HASH}'\n"))
    url = serve(security)
    for _ in range(3):
        assert get(url, auth=("prometheus", PASSWORD)).status_code == 200
    assert calls == [HASH.encode()]  # later scrapes hit the cache
    assert get(url, auth=("nobody", PASSWORD)).status_code == 401
    assert len(calls) == 2 and calls[1] != HASH.encode()  # the dummy hash, so timing does not reveal users
    assert get(url, auth=("prometheus", "wrong")).status_code == 401
    assert get(url, auth=("prometheus", "wrong")).status_code == 401
    assert len(calls) == 4  # failures are never cached
    assert security.reload()
    assert get(url, auth=("prometheus", PASSWORD)).status_code == 200
    assert len(calls) == 5  # the cache went with the old config


def test_no_web_config_means_plain_http_and_no_auth(serve):
    security = WebSecurity(None)
    assert security.ssl_context is None and security.config is None
    url = serve(security)
    assert get(url).status_code == 200
    assert security.reload()


# --------------------------------------------------------------------------- reload


def test_reload_rotates_the_certificate_for_new_connections(pki, serve):
    security = WebSecurity(tls_config(pki))
    context = security.ssl_context
    url = serve(security)
    old_ca, new_ca = pki.ca_file(pki.server_ca, "old-ca"), pki.ca_file(rotated := trustme.CA(), "new-ca")
    assert get(url, verify=old_ca).status_code == 200
    pki.server_files(rotated)  # overwrite server.crt/server.key in place, as cert-manager does
    with pytest.raises(requests.exceptions.SSLError):  # files changed, but nothing is re-read before reload()
        get(url, verify=new_ca)
    assert security.reload()
    assert security.ssl_context is context  # the servers keep their context object
    assert get(url, verify=new_ca).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        get(url, verify=old_ca)


def test_reload_applies_new_client_auth_and_client_ca(pki, serve):
    config = tls_config(pki)
    security = WebSecurity(config)
    url = serve(security)
    ca = pki.ca_file(pki.server_ca, "ca")
    assert get(url, verify=ca).status_code == 200
    pki.ca_file(pki.client_ca, "clients-ca")
    config.write_text(config.read_text() + "  client_auth_type: RequireAndVerifyClientCert\n"
                                           "  client_ca_file: clients-ca.pem\n")
    assert security.reload()
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url, verify=ca)
    first_client = pki.client_file(pki.client_ca, "scraper")
    assert get(url, verify=ca, cert=first_client).status_code == 200
    replacement = trustme.CA()  # rotate the client CA: certificates of the old one stop working
    pki.ca_file(replacement, "clients-ca")
    assert security.reload()
    with pytest.raises(requests.exceptions.ConnectionError):
        get(url, verify=ca, cert=first_client)
    assert get(url, verify=ca, cert=pki.client_file(replacement, "new-scraper")).status_code == 200


def test_broken_file_on_reload_keeps_the_last_good_config(pki, serve, caplog):
    config = tls_config(pki, users=True)
    security = WebSecurity(config)
    url = serve(security)
    ca = pki.ca_file(pki.server_ca, "ca")
    config.write_text("tls_server_config: [not, a, mapping\n")
    caplog.set_level(logging.ERROR, logger="exporter.web.webconfig")
    assert not security.reload()
    assert len(caplog.records) == 1 and "\n" not in caplog.records[0].getMessage()
    assert "not valid YAML" in caplog.records[0].getMessage()
    assert get(url, verify=ca).status_code == 401  # auth still on
    assert get(url, verify=ca, auth=("prometheus", PASSWORD)).status_code == 200  # TLS still on, same cert
    (pki.dir / "server.key").write_text("garbage")  # a half-rotated pair is refused too
    config.write_text(f"tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
                      f"basic_auth_users:\n  other: {HASH}\n")
    assert not security.reload()
    assert get(url, verify=ca, auth=("prometheus", PASSWORD)).status_code == 200


@pytest.mark.parametrize("direction", ["on", "off"])
def test_turning_tls_on_or_off_needs_a_restart(pki, direction, caplog):
    plain = f"basic_auth_users:\n  prometheus: {HASH}\n"
    config = tls_config(pki)  # writes the certificate files too
    if direction == "on":
        config.write_text(plain)
    security = WebSecurity(config)
    before = security.config
    config.write_text(plain if direction == "off" else
                      "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
    assert not security.reload()
    assert security.config is before
    assert f"turning TLS {direction} needs a restart" in caplog.text


# --------------------------------------------------------------------------- errors


def encrypted_key(pki: Pki) -> None:
    key = serialization.load_pem_private_key((pki.dir / "server.key").read_bytes(), password=None)
    (pki.dir / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase")))


def mismatched_key(pki: Pki) -> None:
    pki.server_files(name="other")
    (pki.dir / "server.key").write_bytes((pki.dir / "other.key").read_bytes())


TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
BROKEN_CONFIGS = {
    "unknown top-level key": ("tls_server_confg: {}\n", None, "unknown key 'tls_server_confg' in the top level"),
    "unknown tls key": (TLS + "  cert_fil: x\n", None, "unknown key 'cert_fil' in tls_server_config"),
    "unsupported option": (TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", None,
                           "tls_server_config.cipher_suites is an exporter-toolkit option that tiw-exporter does not"),
    "unsupported rate limit": ("rate_limit: {interval: 1s}\n", None, "rate_limit is an exporter-toolkit option"),
    "http2 not a bool": ("http_server_config:\n  http2: maybe\n", None, "http2 must be true or false"),
    "not a mapping": ("- a\n- b\n", None, "the top level must be a mapping, not list"),
    "invalid yaml": ("tls_server_config: [x\n", None, "not valid YAML at line 2"),
    "missing cert file": ("tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n", None,
                          "cannot read cert_file"),
    "cert without key": ("tls_server_config:\n  cert_file: server.crt\n", None, "cert_file is set but key_file is"),
    "key without cert": ("tls_server_config:\n  key_file: server.key\n", None, "missing cert_file"),
    "options without cert": ("tls_server_config:\n  min_version: TLS13\n", None, "missing cert_file"),
    "cert is not pem": (TLS, lambda p: (p.dir / "server.crt").write_text("hello"), "contains no PEM certificate"),
    "key is not pem": (TLS, lambda p: (p.dir / "server.key").write_text("hello"), "contains no PEM private key"),
    "key does not match": (TLS, mismatched_key, "does not match cert_file"),
    "encrypted key": (TLS, encrypted_key, "is encrypted"),
    "bad client auth": (TLS + "  client_auth_type: Sometimes\n", None, "client_auth_type 'Sometimes' is not one of"),
    "ca without client auth": (TLS + "  client_ca_file: server.crt\n", None,
                               "client_ca_file is set but client_auth_type is NoClientCert"),
    "verify without ca": (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", None,
                          "RequireAndVerifyClientCert needs client_ca_file"),
    "ca is not pem": (TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: server.key\n", None,
                      "client_ca_file"),
    "bad min version": (TLS + "  min_version: SSL3\n", None, "min_version 'SSL3' is not one of"),
    "min above max": (TLS + "  min_version: TLS13\n  max_version: TLS12\n", None, "min_version TLS13 is above"),
    "plain-text password": ("basic_auth_users:\n  prometheus: hunter2hunter2\n", None,
                            "the password of 'prometheus' is not a bcrypt hash"),
    "numeric user": (f"basic_auth_users:\n  1234: {HASH}\n", None, "user name 1234 must be a non-empty string"),
    "duplicate user": (f"basic_auth_users:\n  a: {HASH}\n  a: {HASH}\n", None, "duplicate key 'a'"),
}


@pytest.mark.parametrize("case", BROKEN_CONFIGS.values(), ids=BROKEN_CONFIGS.keys())
def test_every_config_error_is_one_line_naming_file_and_problem(pki, case):
    text, damage, problem = case
    pki.server_files()
    if damage:
        damage(pki)
    path = write_config(pki, text)
    with pytest.raises(WebConfigError) as caught:
        WebSecurity(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"web config {path}: ")
    assert problem in message
    assert "hunter2" not in message


def test_missing_config_file(tmp_path):
    with pytest.raises(WebConfigError, match=r"web config .*absent.yml: cannot read the file: No such file"):
        load_web_config(tmp_path / "absent.yml")


def test_empty_file_and_toolkit_only_knobs_are_accepted(pki):
    assert load_web_config(write_config(pki, "")).tls is None
    pki.ca_file(pki.client_ca, "ca")
    config = load_web_config(tls_config(pki, "  client_auth_type: RequireClientCert\n  client_ca_file: ca.pem\n"
                                             "  prefer_server_cipher_suites: false\n"
                                             "http_server_config:\n  http2: false\n"))
    assert config.tls is not None and config.tls.client_auth_type == "RequireAnyClientCert"
    assert config.tls.verify_mode == ssl.CERT_REQUIRED
    assert config.tls.cert_file == pki.dir / "server.crt"  # relative to the config file


# --------------------------------------------------------------------------- hygiene


def test_passwords_and_hashes_never_reach_logs_or_reprs(pki, serve, caplog):
    caplog.set_level(logging.DEBUG)
    config = tls_config(pki, users=True)
    security = WebSecurity(config)
    url = serve(security)
    ca = pki.ca_file(pki.server_ca, "ca")
    get(url, verify=ca, auth=("prometheus", PASSWORD))
    get(url, verify=ca, auth=("prometheus", PASSWORD + "typo"))
    get(url, verify=ca, auth=("nobody", PASSWORD))
    security.reload()
    config.write_text(config.read_text().replace(HASH, PASSWORD))  # a password pasted where the hash goes
    security.reload()
    shown = caplog.text + repr(security) + repr(security.config)
    assert "prometheus" in shown  # the user name is fine to show
    assert PASSWORD not in shown and HASH not in shown and HASH[7:29] not in shown


def test_exporter_serves_tls_basic_auth_and_an_auth_free_callback_listener(pki: Pki) -> None:
    """The wired exporter: everything behind the web config, callbacks also on their own listener."""
    config = tls_config(pki, users=True)
    ca = str(pki.ca_file(pki.server_ca, "server-ca"))
    with Simulator(credentials={"AKIDweb": "web-key"}) as simulator:
        settings = build_settings({"listen": "127.0.0.1:0", "callback_listen": "127.0.0.1:0",
                                   "endpoint": simulator.url, "web_config_file": str(config),
                                   "callback_key": "cb-key"})
        exporter = Exporter(settings, credentials=StaticCredentials(Credential("AKIDweb", "web-key"))).start()
        try:
            assert exporter.url.startswith("https://")
            assert requests.get(f"{exporter.url}/metrics", verify=ca, timeout=5).status_code == 401
            scraped = requests.get(f"{exporter.url}/metrics", verify=ca, auth=("prometheus", PASSWORD), timeout=5)
            assert scraped.status_code == 200 and "tiw_exporter_build_info" in scraped.text
            expire = int(time.time()) + 60
            event = {"Timestamp": 1, "SdkAppId": 1400000001, "ExpireTime": expire, "Sign": sign("cb-key", expire),
                     "EventType": "WhiteboardPushStarted", "EventData": {"TaskId": "from_tiw"}}
            assert requests.post(f"{exporter.url}/callbacks/tiw", json=event, verify=ca, timeout=5).status_code == 401
            side_door = requests.post(f"{exporter.callback_server.url}/callbacks/tiw", json=event, verify=ca, timeout=5)
            assert side_door.status_code == 200
            assert exporter.store.get((1400000001, "from_tiw")) is not None
            config.write_text("tls_server_config: [broken\n")
            exporter.reload()
            metrics = requests.get(f"{exporter.url}/metrics", verify=ca, auth=("prometheus", PASSWORD), timeout=5)
            assert "tiw_exporter_web_config_last_reload_successful 0.0" in metrics.text
        finally:
            exporter.stop()
