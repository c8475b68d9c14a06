"""The API's description and the CapabilityStatement are drawn from what is registered: no FHIR
route goes undescribed, and the CapabilityStatement declares what the routes and search tables
do (and validates as FHIR, fhir.resources R4B)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from carnet.app import create_app
from carnet.fhir.capability import SEARCH, capability_statement
from carnet.fhir.openapi import Operation, resource
from carnet.fhir.routes import fhir_router
from carnet.settings import Settings

METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("openapi"), dev_issuer=True)
    return create_app(settings).openapi()


def _fhir_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        if path.startswith("/fhir")
        for method, op in item.items()
        if method in METHODS
    ]


def test_every_fhir_route_is_registered_with_a_description() -> None:
    """A route added beside routes.py's ``add`` (which requires an Operation) fails here."""
    routes = [r for r in fhir_router().routes if isinstance(r, APIRoute)]
    assert routes
    for route in routes:
        extra = route.openapi_extra or {}
        assert extra.get("summary") and extra.get("responses"), (route.methods, route.path)


def test_every_fhir_operation_is_described(document: dict[str, Any]) -> None:
    operations = _fhir_operations(document)
    assert len(operations) >= 28
    for method, path, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        named = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
        assert named == set(re.findall(r"{(\w+)}", path)), where
        statuses = set(op["responses"])
        assert any(s.startswith("2") for s in statuses), where
        for status, reply in op["responses"].items():
            content = reply.get("content", {})
            # no FastAPI default ("application/json" with an empty schema) left anywhere
            assert "application/json" not in content, (where, status)
            for media, body in content.items():
                assert body.get("schema"), (where, status, media)
            if int(status) >= 400:
                assert content == {
                    "application/fhir+json": {
                        "schema": {"$ref": "#/components/schemas/OperationOutcome"}
                    }
                }, (where, status)
        if op.get("security"):
            assert {"401", "403"} <= statuses, where
        if method in ("put", "post", "patch"):
            assert op.get("requestBody", {}).get("content"), where


def test_search_parameters_come_from_the_tables(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for rtype, table in SEARCH.items():
        op = paths[f"/fhir/{rtype}"]["get"]
        names = {p["name"] for p in op["parameters"] if p["in"] == "query"}
        assert set(table) <= names, rtype


def test_request_bodies_and_schemas(document: dict[str, Any]) -> None:
    paths = document["paths"]
    put = paths["/fhir/DocumentReference/{id}"]["put"]["requestBody"]["content"]
    assert put["application/fhir+json"]["schema"] == {
        "$ref": "#/components/schemas/DocumentReference"
    }
    binary = paths["/fhir/Binary"]["post"]["requestBody"]["content"]
    assert "*/*" in binary
    schemas = document["components"]["schemas"]
    for name in ("OperationOutcome", "Bundle", "Patient", "DocumentReference", "List"):
        assert name in schemas
    # FHIR's references rebased onto components
    assert "#/definitions/" not in str(schemas["DocumentReference"])
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert "security" not in paths["/fhir/metadata"]["get"]


def test_capability_statement_validates_as_fhir() -> None:
    cs = capability_statement("http://x/fhir", fhir_router().routes)
    CapabilityStatement.model_validate(cs)
    assert cs["format"] == ["application/fhir+json", "json"]
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    docref = resources["DocumentReference"]
    assert docref["profile"].endswith("pdsm-comprehensive-document-reference")
    assert any(
        p.endswith("IHE.MHD.Comprehensive.DocumentReference") for p in docref["supportedProfile"]
    )
    lists = resources["List"]
    assert lists["profile"].endswith("pdsm-submissionset-comprehensive")
    assert any(p.endswith("pdsm-folder-comprehensive") for p in lists["supportedProfile"])
    assert any(p.endswith("IHE.MHD.Comprehensive.Folder") for p in lists["supportedProfile"])
    assert "fr-core-patient" in resources["Patient"]["profile"]
    for r in resources.values():
        for p in r.get("searchParam", []):
            assert p["definition"].startswith(("http://hl7.org/fhir/", "https://")), p
            assert p["documentation"] and p["type"], p
        if any(i["code"] == "search-type" for i in r["interaction"]):
            assert [p["name"] for p in r["searchParam"]] == list(SEARCH[r["type"]]), r["type"]
    # PATCH and the conditional update and patch of DocumentReference are declared
    assert cs["patchFormat"] == ["application/json-patch+json"]
    assert {"code": "patch"} in docref["interaction"]
    assert docref["conditionalUpdate"] is True
    assert docref["extension"][0]["url"].endswith("rest.resource.conditionalPatch")
    # and nothing the routes do not serve
    assert all(i["code"] != "patch" for i in resources["Patient"]["interaction"])
    assert "conditionalUpdate" not in resources["Patient"]


async def _handler(_request: Any) -> Any:  # pragma: no cover - never called
    raise AssertionError


def test_capability_statement_follows_the_routes() -> None:
    """Registering PATCH (and its conditional form) is enough to declare them."""
    router = fhir_router()
    router.routes[:] = [
        r
        for r in router.routes
        if "PATCH" not in getattr(r, "methods", ())
        and not (
            getattr(r, "path", "") == "/fhir/DocumentReference" and "PUT" in r.methods  # type: ignore[attr-defined]
        )
    ]
    bare_cs = capability_statement("http://x/fhir", router.routes)
    assert "patchFormat" not in bare_cs
    described = Operation("x", {200: resource("DocumentReference", "x")})
    extra = APIRouter(prefix="/fhir")
    for path in ("/DocumentReference/{id}", "/DocumentReference"):
        extra.add_api_route(path, _handler, methods=["PATCH"], **described.route_args(path))
    cs = capability_statement("http://x/fhir", [*router.routes, *extra.routes])
    CapabilityStatement.model_validate(cs)
    assert cs["patchFormat"] == ["application/json-patch+json"]
    docref = next(r for r in cs["rest"][0]["resource"] if r["type"] == "DocumentReference")
    assert {"code": "patch"} in docref["interaction"]
    assert "conditionalUpdate" not in docref  # no conditional PUT route in this router
    assert docref["extension"][0]["url"].endswith("rest.resource.conditionalPatch")
    # a resource without routes is not declared
    bare = capability_statement("http://x/fhir", [])
    assert bare["rest"][0]["resource"] == []
    assert "interaction" not in bare["rest"][0]


def test_readme_tells_how_a_route_is_described() -> None:
    text = (Path(__file__).resolve().parents[2] / "src/carnet/fhir/README.md").read_text()
    assert "openapi.py" in text and "Operation" in text
