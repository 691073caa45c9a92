"""TC3-HMAC-SHA256 signing: Tencent's worked examples and the official SDK as an oracle."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.common.http.request import RequestInternal
from tencentcloud.common.sign import Sign

from exporter.tencentcloud import signing

# Tencent's published example (DESIGN §3).
EXAMPLE_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)
EXAMPLE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "Host": "cvm.tencentcloudapi.com",
    "X-TC-Action": "DescribeInstances",
}
EXAMPLE_TIMESTAMP = 1551113065


@pytest.mark.parametrize(
    ("secret_key", "signed_headers", "expected"),
    [
        (
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            ("content-type", "host"),
            "2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c",
        ),
        (
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            ("content-type", "host"),
            "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168",
        ),
        (
            "*" * 32,
            ("content-type", "host", "x-tc-action"),
            "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f",
        ),
    ],
)
def test_signature_matches_tencent_worked_examples(secret_key, signed_headers, expected):
    canonical = signing.canonical_request("POST", "/", "", EXAMPLE_HEADERS, signed_headers, EXAMPLE_PAYLOAD)
    assert signing.signature(secret_key, EXAMPLE_TIMESTAMP, "cvm", canonical) == expected


def test_example_canonical_request_lowercases_action_header():
    canonical = signing.canonical_request(
        "POST", "/", "", EXAMPLE_HEADERS, ("content-type", "host", "x-tc-action"), EXAMPLE_PAYLOAD
    )
    assert "x-tc-action:describeinstances\n" in canonical
    assert canonical.startswith("POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:")


def _official_signature(secret_key: str, timestamp: int, service: str, host: str, body: str) -> str:
    """What tencentcloud-sdk-python-common computes for a JSON POST."""
    req = RequestInternal(host=host, method="POST", uri="/", data=body)
    req.header = {"Content-Type": "application/json", "Host": host, "X-TC-Timestamp": str(timestamp)}
    date = datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d")
    client = AbstractClient.__new__(AbstractClient)
    client.profile = type("P", (), {"unsignedPayload": False})()
    return client._get_tc3_signature({}, req, date, service, secret_key)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(
    secret_key=st.text(min_size=1, max_size=48),
    timestamp=st.integers(min_value=0, max_value=4_102_444_800),
    service=st.sampled_from(["tiw", "cvm", "cam", "trtc"]),
    host=st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){0,3}(:[0-9]{2,5})?", fullmatch=True),
    params=st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=6),
)
def test_signature_equals_official_sdk_signer(secret_key, timestamp, service, host, params):
    body = json.dumps(params)
    headers = {"Content-Type": "application/json", "Host": host}
    canonical = signing.canonical_request("POST", "/", "", headers, signing.DEFAULT_SIGNED_HEADERS, body.encode())
    ours = signing.signature(secret_key, timestamp, service, canonical)
    assert ours == _official_signature(secret_key, timestamp, service, host, body)


@settings(max_examples=100, deadline=None)
@given(
    secret_key=st.text(min_size=1, max_size=40),
    string=st.text(max_size=200),
    timestamp=st.integers(min_value=0, max_value=4_102_444_800),
)
def test_key_derivation_equals_official_sign_tc3(secret_key, string, timestamp):
    date = signing.utc_date(timestamp)
    canonical = f"POST\n/\n\ncontent-type:application/json\nhost:h\n\ncontent-type;host\n{string}"
    expected = Sign.sign_tc3(secret_key, date, "tiw", signing.string_to_sign(timestamp, "tiw", canonical))
    assert signing.signature(secret_key, timestamp, "tiw", canonical) == expected


def test_authorization_header_round_trips_through_parser():
    header = signing.authorization("AKIDexample", "key", EXAMPLE_TIMESTAMP, "tiw", "canon")
    parsed = signing.parse_authorization(header)
    assert parsed is not None
    assert parsed.secret_id == "AKIDexample"
    assert parsed.date == "2019-02-25"
    assert parsed.service == "tiw"
    assert parsed.signed_headers == ("content-type", "host")
    assert parsed.signature == signing.signature("key", EXAMPLE_TIMESTAMP, "tiw", "canon")


@pytest.mark.parametrize(
    "value",
    ["", "Basic abc", "TC3-HMAC-SHA256 Credential=x", "TC3-HMAC-SHA256 Credential=a/2019-01-01/tiw/tc3_request, "
     "SignedHeaders=content-type;host, Signature=nothex"],
)
def test_malformed_authorization_is_rejected(value):
    assert signing.parse_authorization(value) is None
