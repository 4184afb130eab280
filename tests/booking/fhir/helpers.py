"""What every FHIR test reads answers with: the R4 (4.0.1) models of ``fhirclient``, used
directly rather than through the code under test."""

from __future__ import annotations

from typing import Any

from fhirclient.models.fhirelementfactory import (  # type: ignore[import-untyped]
    FHIRElementFactory,
)
from fhirclient.models.resource import Resource  # type: ignore[import-untyped]

FHIR_JSON = "application/fhir+json"


def r4(body: dict[str, Any]) -> Any:
    """``body`` parsed by the R4 model of its ``resourceType`` (contained resources and a
    Bundle's entries by theirs): strict, so an unknown element, a missing required one or a value
    of the wrong type or format raises FHIRValidationError."""
    model = FHIRElementFactory.instantiate(body["resourceType"], body)
    assert isinstance(model, Resource), body["resourceType"]
    assert model.resource_type == body["resourceType"]
    return model


def fhir(response: Any, resource_type: str, status: int = 200) -> dict[str, Any]:
    """``response`` is a FHIR ``resource_type`` with ``status`` that the R4 model accepts, and
    that it writes back unchanged (so no empty array and no null, which FHIR's JSON forbids);
    returns its JSON."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR_JSON
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == resource_type
    assert r4(body).as_json() == body
    return body


def outcome(response: Any, status: int, code: str) -> dict[str, Any]:
    """``response`` is an OperationOutcome with ``status`` whose one issue has ``code``; returns
    that issue."""
    body = fhir(response, "OperationOutcome", status)
    (issue,) = body["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code, issue
    assert issue["diagnostics"]
    return issue


def entries(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    """The resources of a searchset Bundle, in order."""
    assert bundle["type"] == "searchset"
    assert bundle["total"] == len(bundle.get("entry", []))
    return [entry["resource"] for entry in bundle.get("entry", [])]
