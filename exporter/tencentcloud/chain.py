"""The credential chain the official SDKs use: the first configured source wins.

Order: explicit (``--secret-id`` + ``--secret-key-file``), environment, profile file, CVM instance role.
"""

from __future__ import annotations

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
from exporter.tencentcloud.cvm_role import CvmRoleCredentials


def resolve_chain(
    secret_id: str | None = None,
    secret_key_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    profile_paths: tuple[Path, ...] = PROFILE_PATHS,
    cvm_role: str | None = None,
) -> CredentialProvider:
    """Pick the first configured source, in the official SDKs' order."""
    env = os.environ if env is None else env
    if secret_id or secret_key_file:
        if not (secret_id and secret_key_file):
            raise CredentialError("--secret-id and --secret-key-file must be given together")
        return SecretFileCredentials(secret_id, secret_key_file)
    found = from_environment(env)
    if found:
        return found
    for path in profile_paths:
        found = from_profile(path)
        if found:
            return found
    if cvm_role:
        return CvmRoleCredentials(cvm_role)
    raise CredentialError(
        "no Tencent Cloud credentials: set --secret-id/--secret-key-file, TENCENTCLOUD_SECRET_ID/"
        "TENCENTCLOUD_SECRET_KEY, ~/.tencentcloud/credentials, or --cvm-role"
    )
