"""Tencent Cloud credentials: the key pair and the long-lived sources (key file, environment, profile).

The chain that picks one source is in ``chain.py``; instance-role keys are in ``cvm_role.py``.
Secrets never reach ``repr``/``str``: a leaked log line must not leak a key.
"""

from __future__ import annotations

import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from exporter.secretfile import SecretFileError, WatchedSecret

PROFILE_PATHS = (Path("~/.tencentcloud/credentials"), Path("/etc/tencentcloud/credentials"))


class CredentialError(Exception):
    """No usable credential could be found or loaded (message names the source, never the key)."""


@dataclass(frozen=True)
class Credential:
    secret_id: str
    secret_key: str = field(repr=False)
    token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        return f"Credential(secret_id={self.secret_id!r}, secret_key='***', token={'***' if self.token else ''!r})"

    __str__ = __repr__


class CredentialProvider:
    """Something that yields the credential to sign the next request with.

    ``get()`` is called per request so rotated files and refreshed role keys take effect.
    """

    description = "credentials"

    def get(self) -> Credential:
        raise NotImplementedError


@dataclass(frozen=True, repr=False)
class StaticCredentials(CredentialProvider):
    credential: Credential
    description: str = "static credentials"

    def get(self) -> Credential:
        return self.credential

    def __repr__(self) -> str:
        return f"StaticCredentials({self.credential!r})"


class SecretFileCredentials(CredentialProvider):
    """``--secret-id`` with ``--secret-key-file``: the key is re-read when the file changes."""

    def __init__(self, secret_id: str, key_file: Path, token_file: Path | None = None,
                 name: str = "secret_key") -> None:
        self._secret_id = secret_id
        try:  # fail at startup, not at the first poll
            self.key = WatchedSecret(name, "secret key", key_file)
            self.token = WatchedSecret(f"{name}_token", "token", token_file) if token_file else None
        except SecretFileError as exc:
            raise CredentialError(str(exc)) from None
        self.description = f"--secret-key-file {key_file}"

    @property
    def secrets(self) -> list[WatchedSecret]:
        return [self.key] + ([self.token] if self.token else [])

    def get(self) -> Credential:
        return Credential(self._secret_id, self.key.get() or "", (self.token.get() or "") if self.token else "")

    def __repr__(self) -> str:
        return f"SecretFileCredentials(secret_id={self._secret_id!r}, key_file={str(self.key.path)!r})"


def from_environment(env: Mapping[str, str]) -> StaticCredentials | None:
    secret_id = env.get("TENCENTCLOUD_SECRET_ID", "").strip()
    secret_key = env.get("TENCENTCLOUD_SECRET_KEY", "").strip()
    if not secret_id and not secret_key:
        return None
    if not secret_id or not secret_key:
        missing = "TENCENTCLOUD_SECRET_KEY" if secret_id else "TENCENTCLOUD_SECRET_ID"
        raise CredentialError(f"{missing} is not set (the other half of the key pair is)")
    # tccli's name, then the Terraform provider's: temporary keys given either way keep their token.
    token = env.get("TENCENTCLOUD_TOKEN", "").strip() or env.get("TENCENTCLOUD_SECURITY_TOKEN", "").strip()
    return StaticCredentials(Credential(secret_id, secret_key, token), "environment")


def from_profile(path: Path) -> StaticCredentials | None:
    """The INI profile file, section ``[default]``; None when the file does not exist."""
    path = path.expanduser()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        raise CredentialError(f"cannot parse credentials profile {path}: {type(exc).__name__}") from None
    if not parser.has_section("default"):
        raise CredentialError(f"credentials profile {path} has no [default] section")
    section = parser["default"]
    secret_id = section.get("secret_id", "").strip()
    secret_key = section.get("secret_key", "").strip()
    if not secret_id or not secret_key:
        raise CredentialError(f"credentials profile {path} lacks secret_id or secret_key in [default]")
    return StaticCredentials(Credential(secret_id, secret_key), f"profile {path}")
