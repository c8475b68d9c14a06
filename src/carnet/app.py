"""create_app(settings): the ASGI application with every interface mounted."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.telemetry import TelemetryConfig
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match

from carnet import __version__
from carnet.access.core import Core
from carnet.auth.dev_issuer import DevIssuer
from carnet.auth.routes import dev_token_router
from carnet.auth.tokens import TokenVerifier
from carnet.domain.actors import Actor, ActorKind
from carnet.domain.errors import CoreError, NotAuthenticated
from carnet.fhir.errors import FhirError, from_core
from carnet.fhir.openapi import add_components
from carnet.fhir.outcome import error_response, outcome_response
from carnet.fhir.routes import fhir_router
from carnet.fhir.validation import fhir_definitions, warm
from carnet.settings import Settings

log = logging.getLogger("carnet")

_HTTP_CODES = {404: "not-found", 405: "not-supported", 413: "too-costly", 415: "not-supported"}


SERVER_OPERATOR = Actor(kind=ActorKind.OPERATOR, subject="carnet-server", issuer="carnet")
"""Who the server's own background tasks act as (the purge of abandoned uploads)."""

_NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def _otel_wanted() -> bool:
    """FastAPI's OpenTelemetry spans and metrics, only for an operator who exports them
    (``OTEL_SERVICE_NAME`` or an ``OTEL_*_EXPORTER`` set, as ``opentelemetry-instrument``
    expects): otherwise looking for a configured provider costs every request for nothing."""
    return any(
        k == "OTEL_SERVICE_NAME" or k.endswith("_EXPORTER")
        for k in os.environ
        if k.startswith("OTEL_")
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed(request: Request) -> str:
    """The methods the request's path answers (RFC 9110 §15.5.6: a 405 says them in Allow):
    each method the router would route there in full, where Starlette names only the first
    route it tried."""
    routes = request.app.router.routes
    allowed = [
        m
        for m in _METHODS
        if any(r.matches({**request.scope, "method": m})[0] is Match.FULL for r in routes)
    ]
    return ", ".join(allowed)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    dev_issuer = (
        DevIssuer.load_or_create(settings.data_dir, settings.audience, settings.token_ttl_seconds)
        if settings.dev_issuer
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        core = await Core.start(settings)
        await asyncio.to_thread(warm)  # the FHIR validators, compiled once per process
        app.state.core = core
        core.start_upload_purger(SERVER_OPERATOR)
        app.state.verifier = TokenVerifier(settings, dev_issuer)
        try:
            yield
        finally:
            await core.close()

    app = FastAPI(
        title="carnet",
        version=__version__,
        description="Host for the French shared medical record (DMP): FHIR R4 / IHE MHD (PDSm).",
        lifespan=lifespan,
        # the API's description: for development, or where the operator says so (CARNET_API_DOCS)
        docs_url="/docs" if settings.api_docs_served else None,
        openapi_url="/openapi.json" if settings.api_docs_served else None,
        redoc_url=None,
        telemetry=None if _otel_wanted() else _NO_TELEMETRY,
    )

    @app.exception_handler(FhirError)
    async def fhir_error(_request: Request, exc: FhirError) -> Response:
        return error_response(exc)

    @app.exception_handler(CoreError)
    async def core_error(request: Request, exc: CoreError) -> Response:
        if isinstance(exc, NotAuthenticated):
            out = FhirError(exc.message)
            out.status, out.code = 401, "login"
            return error_response(out)
        mapped = from_core(exc)
        if mapped.status >= 500:
            log.error("server error on %s %s: %s", request.method, request.url.path, exc.message)
            if mapped.status == 500:
                mapped.message = "internal error; it was logged"
        return error_response(mapped)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/fhir"):
            code = _HTTP_CODES.get(exc.status_code, "processing")
            detail = str(exc.detail)
            if exc.status_code == 404:
                detail = f"no FHIR interaction at {request.method} {request.url.path}"
            elif exc.status_code == 405:
                detail = f"{request.method} is not supported on {request.url.path}"
                allow = _allowed(request)
                return outcome_response(405, code, detail, headers={"Allow": allow})
            return outcome_response(exc.status_code, code, detail)
        return JSONResponse(
            {"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        return outcome_response(400, "invalid", f"invalid request: {exc.errors()[:3]}")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return outcome_response(500, "exception", "internal error; it was logged")

    fhir = fhir_router()
    app.include_router(fhir)
    app.state.fhir_routes = tuple(fhir.routes)  # what /fhir/metadata declares (capability.py)

    def openapi() -> dict[str, Any]:
        """FastAPI's description of the routes, with the FHIR R4 schemas they name."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            add_components(document, fhir_definitions())
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    if dev_issuer is not None:
        app.include_router(dev_token_router(dev_issuer))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
