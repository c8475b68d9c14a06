"""HTTP face of the development issuer: ``POST /dev/token`` and ``GET /dev/jwks``.

The application mounts :func:`dev_token_router` only when CARNET_DEV_ISSUER is on.
Errors follow OAuth 2.0 (RFC 6749 §5.2): ``{"error": "invalid_request", ...}`` with 400.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from carnet.auth.dev_issuer import DevIssuer
from carnet.domain.errors import Invalid

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _invalid(description: str) -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_request", "error_description": description},
        status_code=400,
        headers=_NO_STORE,
    )


def dev_token_router(issuer: DevIssuer) -> APIRouter:
    """A router with the development issuer's token and JWKS endpoints."""
    router = APIRouter(tags=["development issuer"])

    @router.post("/dev/token", summary="Mint a development token")
    async def dev_token(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _invalid("the body must be a JSON object (see docs/tokens.md)")
        try:
            token = issuer.mint(body)
        except Invalid as exc:
            return _invalid(exc.message)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": issuer.ttl},
            headers=_NO_STORE,
        )

    @router.get("/dev/jwks", summary="The development issuer's public keys")
    async def dev_jwks() -> JSONResponse:
        return JSONResponse(issuer.jwks(), media_type="application/jwk-set+json")

    return router
