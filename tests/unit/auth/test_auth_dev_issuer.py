"""DevIssuer: the key file, the JWKS and the validation of mint requests."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from joserfc.jwk import ECKey

from carnet.auth.dev_issuer import KEY_FILE_NAME, DevIssuer
from carnet.domain.errors import ConfigurationError
from carnet.domain.errors import Invalid as InvalidInput
from carnet.domain.ins import make_nir

NOW = 1_750_000_000
PATIENT_INS = make_nir("1800175123456")


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_key_file_created_with_mode_0600(data_dir: Path) -> None:
    assert not data_dir.exists()
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 3600)
    path = data_dir / KEY_FILE_NAME
    assert path.name == "dev-issuer-key.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert stored["kty"] == "EC"
    assert stored["crv"] == "P-256"
    assert "d" in stored
    # no temporary file left behind
    assert sorted(p.name for p in data_dir.iterdir()) == ["dev-issuer-key.json"]
    # the kid is the RFC 7638 thumbprint of the key
    assert issuer.kid == ECKey.import_key(stored).thumbprint()


def test_key_is_reused_and_permissions_tightened(data_dir: Path) -> None:
    first = DevIssuer.load_or_create(data_dir, "carnet", 3600)
    path = data_dir / KEY_FILE_NAME
    path.chmod(0o644)
    second = DevIssuer.load_or_create(data_dir, "carnet", 600)
    assert second.kid == first.kid
    assert second.jwks() == first.jwks()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_jwks_is_public_only(data_dir: Path) -> None:
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 3600)
    jwks = issuer.jwks()
    assert list(jwks) == ["keys"]
    [key] = jwks["keys"]
    assert "d" not in key
    assert key["kid"] == issuer.kid
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256", "sig")


@pytest.mark.parametrize(
    "content", ["not json", '{"kty": "RSA", "n": "x"}', '{"kty": "EC", "crv": "P-256"}']
)
def test_corrupt_key_file(data_dir: Path, content: str) -> None:
    data_dir.mkdir()
    (data_dir / KEY_FILE_NAME).write_text(content)
    with pytest.raises(ConfigurationError) as caught:
        DevIssuer.load_or_create(data_dir, "carnet", 3600)
    assert str(data_dir / KEY_FILE_NAME) in caught.value.message
    assert "delete" in caught.value.message


def test_public_key_file_refused(data_dir: Path) -> None:
    data_dir.mkdir()
    public = ECKey.generate_key("P-256").as_dict(private=False)
    (data_dir / KEY_FILE_NAME).write_text(json.dumps(public))
    with pytest.raises(ConfigurationError) as caught:
        DevIssuer.load_or_create(data_dir, "carnet", 3600)
    assert "is not an EC P-256 private key" in caught.value.message


def test_ttl_must_be_positive(data_dir: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        DevIssuer.load_or_create(data_dir, "carnet", 0)
    assert caught.value.message == "the token lifetime must be positive, got 0 s"


def test_minted_patient_claims(data_dir: Path) -> None:
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 900, clock=lambda: NOW + 0.7)
    token = issuer.mint({"kind": "patient", "ins": f" {PATIENT_INS.lower()} "})
    assert header(token) == {"alg": "ES256", "kid": issuer.kid, "typ": "JWT"}
    claims = payload(token)
    jti = claims.pop("jti")
    assert len(jti) == 32
    assert claims == {
        "iss": "urn:carnet:dev-issuer",
        "sub": f"ins:{PATIENT_INS}",
        "aud": "carnet",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "carnet_kind": "patient",
        "ins": PATIENT_INS,
        "ins_oid": "1.2.250.1.213.1.4.8",
    }


def test_minted_professional_claims(data_dir: Path) -> None:
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 900, clock=lambda: NOW)
    token = issuer.mint(
        {
            "kind": "professional",
            "rpps": "810000000009",
            "profession": "10",
            "structure": "750712184",
            "name": "Dr Dupont",
        }
    )
    claims = payload(token)
    del claims["jti"]
    assert claims == {
        "iss": "urn:carnet:dev-issuer",
        "sub": "rpps:810000000009",
        "aud": "carnet",
        "iat": NOW,
        "nbf": NOW,
        "exp": NOW + 900,
        "carnet_kind": "professional",
        "rpps": "810000000009",
        "profession": "10",
        "structure": "750712184",
        "mode": "normal",
        "name": "Dr Dupont",
    }
    assert payload(issuer.mint({"kind": "patient", "ins": PATIENT_INS}))["jti"] != payload(
        token
    ).get("jti")


@pytest.mark.parametrize(
    ("request_body", "message", "field"),
    [
        ({"kind": "professional", "profession": "10"}, "rpps: field required", "rpps"),
        (
            {"kind": "professional", "rpps": "810000000009"},
            "profession: field required",
            "profession",
        ),
        ({"kind": "patient"}, "ins: field required", "ins"),
        ({}, "kind: field required ('patient' or 'professional')", "kind"),
        (
            {"kind": "admin"},
            "kind: must be 'patient' or 'professional', got 'admin'",
            "kind",
        ),
        (
            {"kind": "patient", "ins": PATIENT_INS, "rpps": "810000000009"},
            "rpps: unknown field (not allowed here)",
            "rpps",
        ),
        (
            {
                "kind": "professional",
                "rpps": "810000000009",
                "profession": "10",
                "mode": "bris_de_glace",
            },
            "reason: required when mode is bris_de_glace (say why the record is opened)",
            "reason",
        ),
        (
            {
                "kind": "professional",
                "rpps": "810000000009",
                "profession": "10",
                "mode": "bris_de_glace",
                "reason": "  ",
            },
            "reason: string should have at least 1 character",
            "reason",
        ),
        (
            {"kind": "professional", "rpps": "810000000009", "profession": "10", "mode": "urgent"},
            "mode: input should be 'normal', 'bris_de_glace' or 'centre_15'",
            "mode",
        ),
        (
            {"kind": "professional", "rpps": 8100, "profession": "10"},
            "rpps: input should be a valid string",
            "rpps",
        ),
        (
            {"kind": "professional", "rpps": "81 00", "profession": "10"},
            "rpps: must be a code made of letters, digits, '.', '_', ':' or '-'",
            "rpps",
        ),
        (
            {"kind": "patient", "ins": "12345"},
            "ins: INS '12345' must have 15 characters (13 + a 2-digit key), it has 5",
            "ins",
        ),
        (
            {"kind": "patient", "ins": PATIENT_INS, "ins_oid": "1.2.250.1.213.1.4.13"},
            "ins_oid: '1.2.250.1.213.1.4.13' is not an INS OID",
            "ins_oid",
        ),
    ],
)
def test_mint_validation(
    data_dir: Path, request_body: dict[str, Any], message: str, field: str
) -> None:
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 3600)
    with pytest.raises(InvalidInput) as caught:
        issuer.mint(request_body)
    assert isinstance(caught.value, InvalidInput)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.field == field


def test_mint_needs_an_object(data_dir: Path) -> None:
    issuer = DevIssuer.load_or_create(data_dir, "carnet", 3600)
    with pytest.raises(InvalidInput) as caught:
        issuer.mint(["patient"])  # type: ignore[arg-type]
    assert caught.value.message == "the token request must be a JSON object"
