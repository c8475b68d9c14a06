"""POST /dev/token and GET /dev/jwks on a bare FastAPI app (httpx ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from carnet.auth.dev_issuer import DevIssuer
from carnet.auth.routes import dev_token_router
from carnet.auth.tokens import TokenVerifier
from carnet.domain.actors import AccessMode, ActorKind
from carnet.domain.ins import make_nir
from carnet.settings import Settings

PATIENT_INS = make_nir("1800175123456")


@pytest.fixture
def issuer(data_dir: Path) -> DevIssuer:
    return DevIssuer.load_or_create(data_dir, "carnet", 1200)


@pytest.fixture
async def client(issuer: DevIssuer) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(dev_token_router(issuer))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://carnet.test") as c:
        yield c


async def test_token_for_a_patient(
    client: httpx.AsyncClient, issuer: DevIssuer, settings: Settings
) -> None:
    response = await client.post("/dev/token", json={"kind": "patient", "ins": PATIENT_INS})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert sorted(body) == ["access_token", "expires_in", "token_type"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1200
    actor = await TokenVerifier(settings, issuer).verify(body["access_token"])
    assert (actor.kind, actor.ins) == (ActorKind.PATIENT, PATIENT_INS)


async def test_token_for_a_professional(
    client: httpx.AsyncClient, issuer: DevIssuer, settings: Settings
) -> None:
    response = await client.post(
        "/dev/token",
        json={
            "kind": "professional",
            "rpps": "810000000009",
            "profession": "60",
            "mode": "bris_de_glace",
            "reason": "urgence vitale",
        },
    )
    assert response.status_code == 200
    actor = await TokenVerifier(settings, issuer).verify(response.json()["access_token"])
    assert (actor.rpps, actor.profession, actor.mode, actor.reason) == (
        "810000000009",
        "60",
        AccessMode.BRIS_DE_GLACE,
        "urgence vitale",
    )


async def test_invalid_body(client: httpx.AsyncClient) -> None:
    response = await client.post("/dev/token", json={"kind": "professional", "profession": "10"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "rpps: field required",
    }


async def test_bris_de_glace_without_reason(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/dev/token",
        json={
            "kind": "professional",
            "rpps": "810000000009",
            "profession": "10",
            "mode": "bris_de_glace",
        },
    )
    assert response.status_code == 400
    assert response.json()["error_description"] == (
        "reason: required when mode is bris_de_glace (say why the record is opened)"
    )


@pytest.mark.parametrize(
    ("content", "description"),
    [
        (b"{not json", "the body must be a JSON object (see docs/tokens.md)"),
        (b"", "the body must be a JSON object (see docs/tokens.md)"),
        (b"\xff\xfe\x00", "the body must be a JSON object (see docs/tokens.md)"),
        (b'["patient"]', "the token request must be a JSON object"),
        (b'"patient"', "the token request must be a JSON object"),
    ],
)
async def test_malformed_body(client: httpx.AsyncClient, content: bytes, description: str) -> None:
    response = await client.post(
        "/dev/token", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "error_description": description}


async def test_jwks(client: httpx.AsyncClient, issuer: DevIssuer) -> None:
    response = await client.get("/dev/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.json() == issuer.jwks()
    [key] = response.json()["keys"]
    assert key["kid"] == issuer.kid
    assert "d" not in key
