"""Per-request context for FHIR handlers: the verified actor and its scope of the core."""

from __future__ import annotations

import re

from starlette.requests import Request

from carnet.access.core import Core
from carnet.access.scope import Scope
from carnet.domain.actors import Actor
from carnet.fhir.errors import NotAuthenticated, NotFound
from carnet.fhir.wire import check_accept
from carnet.settings import Settings

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
NOT_FOUND = "no such resource, or no access to it"


def core_of(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


def settings_of(request: Request) -> Settings:
    return core_of(request).settings


def base_url(request: Request) -> str:
    """The FHIR base of every absolute URL carnet serves (links, ``Location``,
    ``attachment.url``): from configuration only, never from the request's headers
    (``Settings.public_base_url``)."""
    return settings_of(request).public_base_url + "/fhir"


async def actor_of(request: Request) -> Actor:
    cached = getattr(request.state, "actor", None)
    if isinstance(cached, Actor):
        return cached
    header = request.headers.get("authorization")
    if not header:
        raise NotAuthenticated("a bearer token is required (Authorization: Bearer …)")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
    actor = await request.app.state.verifier.verify(token.strip())
    if not isinstance(actor, Actor):  # pragma: no cover - verifier contract
        raise NotAuthenticated("token did not identify an actor")
    request.state.actor = actor
    return actor


async def scope_of(request: Request) -> Scope:
    if not request.url.path.startswith("/fhir/Binary"):  # raw content has its own media type
        check_accept(request)
    actor = await actor_of(request)
    ident = request.path_params.get("id")
    if ident is not None and not FHIR_ID.match(ident):
        # no resource has such an id (FHIR R4 "id" datatype): answered like any missing one
        raise NotFound(NOT_FOUND)
    return core_of(request).scope(actor)
