"""``--web-config-file``: TLS and basic auth in the Prometheus exporter-toolkit format.

The file is the one node_exporter & co. take with ``--web.config.file``, so users can reuse theirs::

    tls_server_config:
      cert_file: server.crt          # relative paths are relative to this file, as in exporter-toolkit
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...         # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')

Where Python's ``ssl`` or this exporter differs from exporter-toolkit (Go's ``crypto/tls``):

- ``RequestClientCert`` maps to ``CERT_NONE``: OpenSSL cannot ask for a certificate without
  verifying it, and we never use an unverified one, so clients see the same outcome.
- ``RequireAnyClientCert`` (alias ``RequireClientCert``) maps to ``CERT_REQUIRED`` and therefore
  needs ``client_ca_file``: OpenSSL cannot require a certificate without verifying it. Stricter.
- ``VerifyClientCertIfGiven`` and ``RequireAndVerifyClientCert`` need ``client_ca_file``; Go would
  fall back to the system roots, which trusts any publicly issued certificate.
- ``TLS10``/``TLS11`` are accepted with a warning, but OpenSSL 3's default security level may still
  refuse those protocol versions.
- A ``tls_server_config`` with options but no ``cert_file`` is an error (Go serves plain HTTP when
  only e.g. ``min_version`` is set, which hides the mistake).
- Inline ``cert``/``key``/``client_ca``, ``cipher_suites``, ``curve_preferences``,
  ``client_allowed_sans``, ``http_server_config.headers`` and ``rate_limit`` are rejected as
  unsupported rather than ignored: silently dropping a security setting is worse than refusing it.
  ``http_server_config.http2`` is accepted and ignored (we serve HTTP/1.1).
- The file is re-read on ``reload()`` (SIGHUP), not on every request; a broken file keeps the last
  good config. Switching TLS on or off needs a restart. Session tickets are disabled so a reload
  that tightens client authentication is not bypassed by resuming a ticket issued before it (a
  TLS 1.2 session-ID resumption from OpenSSL's server cache cannot be switched off from Python).
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from types import MappingProxyType
from typing import Any

from exporter.web.auth import CHALLENGE, BasicAuthUsers, basic_credentials
from exporter.web.http import HttpError, RequestContext
from exporter.yamlfile import YamlFileError, read_yaml

log = logging.getLogger(__name__)


# exporter-toolkit's client_auth_type values -> the closest ssl verify mode (see the module docstring).
CLIENT_AUTH_TYPES: Mapping[str, ssl.VerifyMode] = MappingProxyType({
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_NONE,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
})
_CLIENT_AUTH_ALIASES = {"RequireClientCert": "RequireAnyClientCert"}  # exporter-toolkit keeps the old name too
TLS_VERSIONS: Mapping[str, ssl.TLSVersion] = MappingProxyType({
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
})
_LEGACY_TLS = frozenset({"TLS10", "TLS11"})

_TOP_KEYS = {"tls_server_config", "basic_auth_users", "http_server_config"}
_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version",
             "prefer_server_cipher_suites"}
_HTTP_KEYS = {"http2"}
# Part of the exporter-toolkit format, deliberately not implemented: named so the error says so.
_UNSUPPORTED = {
    "": {"rate_limit"},
    "tls_server_config": {"cert", "key", "client_ca", "cipher_suites", "curve_preferences", "client_allowed_sans"},
    "http_server_config": {"headers"},
}
_BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class WebConfigError(Exception):
    """The web config file is unusable; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class TlsServerConfig:
    """``tls_server_config`` with paths made absolute and names validated."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True

    @property
    def verify_mode(self) -> ssl.VerifyMode:
        return CLIENT_AUTH_TYPES[self.client_auth_type]


@dataclass(frozen=True)
class WebConfig:
    """A validated web config file. ``basic_auth_users`` maps user names to bcrypt hashes."""

    path: Path
    tls: TlsServerConfig | None = None
    basic_auth_users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __repr__(self) -> str:  # the hashes stay out of logs and tracebacks
        return f"WebConfig(path={str(self.path)!r}, tls={self.tls!r}, basic_auth_users={sorted(self.basic_auth_users)})"

    __str__ = __repr__


def load_web_config(path: Path) -> WebConfig:
    """Read and fully validate ``path``: certificates and keys are loaded, hashes checked."""
    return _load(path)[0]


# --------------------------------------------------------------------------- parsing


def _load(path: Path) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The config and, when TLS is on, a server context built from it (proof the files load)."""
    try:
        document = read_yaml(path, "web config")
    except YamlFileError as exc:
        raise _error(path, exc.reason) from None
    if document is None:
        document = {}
    top = _section(path, document, "", _TOP_KEYS)
    http = _section(path, top.get("http_server_config"), "http_server_config", _HTTP_KEYS)
    if not isinstance(http.get("http2", True), bool):  # validated, then ignored: we serve HTTP/1.1
        raise _error(path, "http_server_config.http2 must be true or false")
    tls = _parse_tls(path, _section(path, top.get("tls_server_config"), "tls_server_config", _TLS_KEYS))
    users = _parse_users(path, top.get("basic_auth_users"))
    config = WebConfig(path=path, tls=tls, basic_auth_users=users)
    return config, (_server_context(path, tls) if tls else None)


def _section(path: Path, value: Any, name: str, known: set[str]) -> dict[str, Any]:
    """A mapping with only known keys (exporter-toolkit unmarshals strictly, so do we)."""
    where = name or "the top level"
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(path, f"{where} must be a mapping, not {type(value).__name__}")
    for key in value:
        if key in _UNSUPPORTED.get(name, ()):
            dotted = f"{name}.{key}" if name else key
            raise _error(path, f"{dotted} is an exporter-toolkit option that tiw-exporter does not support")
        if key not in known:
            raise _error(path, f"unknown key {key!r} in {where} (known: {', '.join(sorted(known))})")
    return value


def _parse_tls(path: Path, section: dict[str, Any]) -> TlsServerConfig | None:
    strings = {}
    for key in ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version", "max_version"):
        value = section.get(key)
        if value is not None and not isinstance(value, str):
            raise _error(path, f"tls_server_config.{key} must be a string")
        strings[key] = value or None  # "" means unset, as in Go
    prefer = section.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise _error(path, "tls_server_config.prefer_server_cipher_suites must be true or false")
    if not any(strings.values()):
        return None
    if not strings["cert_file"]:
        raise _error(path, "tls_server_config: missing cert_file")
    if not strings["key_file"]:
        raise _error(path, "tls_server_config: cert_file is set but key_file is missing")

    auth = strings["client_auth_type"] or "NoClientCert"
    auth = _CLIENT_AUTH_ALIASES.get(auth, auth)
    if auth not in CLIENT_AUTH_TYPES:
        raise _error(path, f"tls_server_config.client_auth_type {auth!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
    if strings["client_ca_file"] and auth == "NoClientCert":
        raise _error(path, "tls_server_config: client_ca_file is set but client_auth_type is NoClientCert")
    if not strings["client_ca_file"] and CLIENT_AUTH_TYPES[auth] != ssl.CERT_NONE:
        raise _error(path, f"tls_server_config: client_auth_type {auth} needs client_ca_file "
                           "(client certificates are always verified against it)")

    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        name = strings[key] or default
        if name not in TLS_VERSIONS:
            raise _error(path, f"tls_server_config.{key} {name!r} is not one of {', '.join(TLS_VERSIONS)}")
        versions[key] = name
    if TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]:
        raise _error(path, f"tls_server_config: min_version {versions['min_version']} is above "
                           f"max_version {versions['max_version']}")
    if versions["min_version"] in _LEGACY_TLS:
        log.warning("web config %s: min_version %s allows insecure TLS versions (and OpenSSL may still refuse "
                    "them); use TLS12 or TLS13", path, versions["min_version"])

    base = path.parent
    return TlsServerConfig(
        cert_file=base / strings["cert_file"],
        key_file=base / strings["key_file"],
        client_ca_file=base / strings["client_ca_file"] if strings["client_ca_file"] else None,
        client_auth_type=auth,
        min_version=versions["min_version"],
        max_version=versions["max_version"],
        prefer_server_cipher_suites=prefer,
    )


def _parse_users(path: Path, section: Any) -> Mapping[str, str]:
    if section is None:
        return MappingProxyType({})
    if not isinstance(section, dict):
        raise _error(path, "basic_auth_users must be a mapping of user name to bcrypt hash")
    users = {}
    for user, hashed in section.items():
        if not isinstance(user, str) or not user:
            raise _error(path, f"basic_auth_users: user name {user!r} must be a non-empty string (quote it)")
        if ":" in user:
            raise _error(path, f"basic_auth_users: user name {user!r} contains ':', which basic auth cannot carry")
        if not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed.strip()):
            # Never echo the value: it may be a plain-text password pasted by mistake.
            raise _error(path, f"basic_auth_users: the password of {user!r} is not a bcrypt hash "
                               "($2a$/$2b$/$2y$, cost 04-31); generate one with htpasswd -nBC 10")
        users[user] = hashed.strip()
    return MappingProxyType(users)


def _server_context(path: Path, tls: TlsServerConfig) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _apply_policy(context, tls)
    cert, key = _read_pem(path, "cert_file", tls.cert_file), _read_pem(path, "key_file", tls.key_file)
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise _error(path, f"cert_file {tls.cert_file} contains no PEM certificate")
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", key):
        raise _error(path, f"key_file {tls.key_file} contains no PEM private key")
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_refuse_password)
    except _EncryptedKey:
        raise _error(path, f"key_file {tls.key_file} is encrypted; give an unencrypted key") from None
    except ssl.SSLError as exc:
        if "KEY_VALUES_MISMATCH" in str(exc):
            raise _error(path, f"key_file {tls.key_file} does not match cert_file {tls.cert_file}") from None
        raise _error(path, f"cannot load cert_file {tls.cert_file} / key_file {tls.key_file}: "
                           f"{exc.reason or exc}") from None
    except OSError as exc:
        raise _error(path, f"cannot read cert_file/key_file: {_reason(exc)}") from None
    if tls.client_ca_file:
        ca = _read_pem(path, "client_ca_file", tls.client_ca_file)
        try:
            context.load_verify_locations(cadata=ca.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            raise _error(path, f"client_ca_file {tls.client_ca_file} contains no valid PEM certificate") from None
    return context


def _apply_policy(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    """Settings OpenSSL copies into each connection from the context it was *created* with."""
    with warnings.catch_warnings():  # Python deprecates TLS 1.0/1.1; we already warned in our own words
        warnings.simplefilter("ignore", DeprecationWarning)
        context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    context.verify_mode = tls.verify_mode
    context.options |= ssl.OP_NO_TICKET
    context.num_tickets = 0
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE


class _EncryptedKey(Exception):
    pass


def _refuse_password() -> bytes:
    """Called by OpenSSL only for an encrypted key: fail instead of prompting on the terminal."""
    raise _EncryptedKey


def _read_pem(path: Path, key: str, file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise _error(path, f"cannot read {key} {file}: {_reason(exc)}") from None


def _error(path: Path, problem: str) -> WebConfigError:
    return WebConfigError(f"web config {path}: {' '.join(problem.split())}")


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or type(exc).__name__


# --------------------------------------------------------------------------- serving


class WebSecurity:
    """The live web config: the TLS context servers wrap sockets with, and the basic-auth check.

    ``ssl_context`` is one object for the process lifetime. Its SNI callback (called for every
    handshake, with or without SNI) switches each new connection to the context built from the
    latest good config, so a reload rotates certificates and CAs without restarting listeners.
    """

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._bcrypt_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._config: WebConfig | None = None
        self._auth: BasicAuthUsers | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._current_context: ssl.SSLContext | None = None
        if path is not None:
            config, context = _load(path)
            self._install(config, context)
            if context is not None:
                context.sni_callback = self._select_context
                self._ssl_context = context
            log.info("web config %s: %s", path, _describe(config))

    @property
    def config(self) -> WebConfig | None:
        return self._config

    @property
    def ssl_context(self) -> ssl.SSLContext | None:
        return self._ssl_context

    def authorize(self, ctx: RequestContext) -> None:
        """Raise 401 unless basic auth is off or the request carries a configured user's password."""
        auth = self._auth
        if auth is None:
            return
        credentials = basic_credentials(ctx.headers.get("Authorization", "") or "")
        if credentials is None:
            log.debug("basic auth: %s %s without credentials", ctx.method, ctx.path[:100])
            raise HttpError(HTTPStatus.UNAUTHORIZED, "basic-auth credentials required", dict(CHALLENGE))
        if not auth.check(*credentials, self._bcrypt_lock):
            log.debug("basic auth: %s %s with a wrong user name or password", ctx.method, ctx.path[:100])
            raise HttpError(HTTPStatus.UNAUTHORIZED, "wrong user name or password", dict(CHALLENGE))

    def reload(self) -> bool:
        """Re-read the file; on any problem keep the last good config, log one line, return False."""
        if self._path is None:
            return True
        with self._reload_lock:
            try:
                config, context = _load(self._path)
                if (context is None) != (self._ssl_context is None):
                    turn = "on" if context else "off"
                    raise WebConfigError(f"web config {self._path}: turning TLS {turn} needs a restart")
            except WebConfigError as exc:
                log.error("%s; keeping the previous web config", exc)
                return False
            self._install(config, context)
            if self._ssl_context is not None and config.tls is not None:
                _apply_policy(self._ssl_context, config.tls)
            log.info("web config %s reloaded: %s", self._path, _describe(config))
            return True

    def _install(self, config: WebConfig, context: ssl.SSLContext | None) -> None:
        self._current_context = context
        self._auth = BasicAuthUsers.build(config.basic_auth_users) if config.basic_auth_users else None
        self._config = config

    def _select_context(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                        initial: ssl.SSLContext) -> None:
        current = self._current_context
        if current is not None and current is not initial:
            connection.context = current

    def __repr__(self) -> str:
        return f"WebSecurity({self._config!r})"


def _describe(config: WebConfig) -> str:
    tls = (f"TLS on (client_auth_type {config.tls.client_auth_type}, min_version {config.tls.min_version})"
           if config.tls else "TLS off")
    users = len(config.basic_auth_users)
    return f"{tls}, basic auth {'for ' + str(users) + ' user(s)' if users else 'off'}"
