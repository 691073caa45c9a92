"""The credential chain: explicit flags first, then the official SDKs' default chain.

Order: ``--secret-id`` + ``--secret-key-file``; ``--cvm-role NAME``; environment
(``TENCENTCLOUD_SECRET_ID``/``_KEY``, token from ``TENCENTCLOUD_TOKEN`` or ``TENCENTCLOUD_SECURITY_TOKEN``);
profile file; the CVM role the metadata service names; TKE OIDC (``TKE_*``). Something given
explicitly is never overridden by something found implicitly, and two explicit sources are an error.
One INFO line says which source won (its description names a file or role, never a secret).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from exporter.tencentcloud.credentials import (
    PROFILE_PATHS,
    CredentialError,
    CredentialProvider,
    SecretFileCredentials,
    from_environment,
    from_profile,
)
from exporter.tencentcloud.cvm_role import CvmRoleCredentials, discover_role
from exporter.tencentcloud.tke_oidc import TkeOidcCredentials

log = logging.getLogger(__name__)


def resolve_chain(
    secret_id: str | None = None,
    secret_key_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    profile_paths: tuple[Path, ...] = PROFILE_PATHS,
    cvm_role: str | None = None,
    metadata_url: str | None = None,
) -> CredentialProvider:
    """The first source that is configured, explicit ones first; logs which one won."""
    provider = _explicit(secret_id, secret_key_file, cvm_role, metadata_url) or _implicit(
        os.environ if env is None else env, profile_paths, metadata_url)
    log.info("Tencent Cloud credentials: %s", provider.description)
    return provider


def _explicit(secret_id: str | None, secret_key_file: Path | None, cvm_role: str | None,
              metadata_url: str | None) -> CredentialProvider | None:
    if (secret_id or secret_key_file) and cvm_role:
        raise CredentialError("--cvm-role and --secret-id/--secret-key-file exclude each other: give one")
    if secret_id or secret_key_file:
        if not (secret_id and secret_key_file):
            raise CredentialError("--secret-id and --secret-key-file must be given together")
        return SecretFileCredentials(secret_id, secret_key_file)
    if cvm_role:
        return CvmRoleCredentials(cvm_role, metadata_url)
    return None


def _implicit(env: Mapping[str, str], profile_paths: tuple[Path, ...], metadata_url: str | None) -> CredentialProvider:
    found: CredentialProvider | None = from_environment(env)
    if found:
        return found
    for path in profile_paths:
        found = from_profile(path)
        if found:
            return found
    role = discover_role(metadata_url)
    if role:
        provider = CvmRoleCredentials(role, metadata_url)
        provider.description += " (named by the metadata service)"
        return provider
    found = TkeOidcCredentials.from_environment(env)
    if found:
        return found
    raise CredentialError(
        "no Tencent Cloud credentials: set --secret-id/--secret-key-file or --cvm-role, TENCENTCLOUD_SECRET_ID/"
        "TENCENTCLOUD_SECRET_KEY, ~/.tencentcloud/credentials, run on a CVM with a role, or in TKE with OIDC"
    )
