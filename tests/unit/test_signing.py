import pytest

from comfy_serverless.errors import SignedUrlRefused
from comfy_serverless.storage.signing import UrlSigner


def test_signed_path_verifies_until_it_expires() -> None:
    signer = UrlSigner("secret")
    signature = signer.signature("outputs/exec_1/a.png", 1000)
    signer.verify("outputs/exec_1/a.png", 1000, signature, now=999)
    with pytest.raises(SignedUrlRefused) as expired:
        signer.verify("outputs/exec_1/a.png", 1000, signature, now=1001)
    assert expired.value.details["reason"] == "expired"
    assert expired.value.status_code == 403


@pytest.mark.parametrize(("key", "expires", "secret"), [
    ("outputs/exec_1/b.png", 1000, "secret"),
    ("outputs/exec_1/a.png", 2000, "secret"),
    ("outputs/exec_1/a.png", 1000, "other"),
])
def test_any_change_breaks_the_signature(key: str, expires: int, secret: str) -> None:
    signature = UrlSigner("secret").signature("outputs/exec_1/a.png", 1000)
    with pytest.raises(SignedUrlRefused) as refused:
        UrlSigner(secret).verify(key, expires, signature, now=0)
    assert refused.value.details["reason"] == "signature_mismatch"


def test_signed_path_carries_expiry_and_signature() -> None:
    path = UrlSigner("s").signed_path("outputs/x/a b.png", 42)
    assert path.startswith("/files/outputs/x/a%20b.png?expires=42&signature=")
