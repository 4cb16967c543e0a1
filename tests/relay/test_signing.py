"""Standard Webhooks signatures: id.timestamp.body, v1 entries, 300 s window."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from relay import signing

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = b'{"type":"agent.progress","data":{"message":"hi"}}'
NOW = 1_700_000_000


def test_sign_follows_standard_webhooks_formula() -> None:
    content = b"msg_1." + str(NOW).encode() + b"." + BODY
    expected = base64.b64encode(hmac.new(KEY, content, hashlib.sha256).digest())

    signature = signing.sign(SECRET, "msg_1", NOW, BODY)

    assert signature == "v1," + expected.decode()


def test_verify_accepts_any_listed_signature() -> None:
    good = signing.sign(SECRET, "msg_1", NOW, BODY)
    header = f"v1,{base64.b64encode(b'old-secret-signature').decode()} {good}"

    signed_at = signing.verify(SECRET, "msg_1", str(NOW), header, BODY, now=NOW)

    assert signed_at == NOW


def test_verify_rejects_other_message_id() -> None:
    signature = signing.sign(SECRET, "msg_1", NOW, BODY)

    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, "msg_2", str(NOW), signature, BODY, now=NOW)


def test_verify_rejects_unsupported_version() -> None:
    value = signing.sign(SECRET, "msg_1", NOW, BODY).split(",", 1)[1]

    with pytest.raises(signing.SignatureError):
        signing.verify(SECRET, "msg_1", str(NOW), f"v1a,{value}", BODY, now=NOW)


@pytest.mark.parametrize("offset", [-301, 301])
def test_verify_rejects_outside_tolerance(offset: int) -> None:
    signature = signing.sign(SECRET, "msg_1", NOW + offset, BODY)

    with pytest.raises(signing.SignatureError) as caught:
        signing.verify(SECRET, "msg_1", str(NOW + offset), signature, BODY, now=NOW)

    assert "300 s" in str(caught.value)


def test_verify_rejects_non_numeric_timestamp() -> None:
    with pytest.raises(signing.SignatureError) as caught:
        signing.verify(SECRET, "msg_1", "soon", "v1,AAAA", BODY, now=NOW)

    assert "'soon'" in str(caught.value)


def test_derived_secrets_differ_per_channel() -> None:
    first = signing.derive_secret(KEY, "channel-a", "sb")

    second = signing.derive_secret(KEY, "channel-b", "sb")

    assert first != second
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
