"""What every FHIR test reads answers with: the R4 model of ``fhir.resources``."""

from __future__ import annotations

from typing import Any

from fhir.resources import construct_fhir_element  # type: ignore[import-untyped]

FHIR_JSON = "application/fhir+json"


def fhir(response: Any, resource_type: str, status: int = 200) -> dict[str, Any]:
    """``response`` is a FHIR ``resource_type`` with ``status`` that the R4 model accepts (it
    refuses unknown elements, missing required ones and wrong types); returns its JSON."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR_JSON
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == resource_type
    construct_fhir_element(resource_type, body)
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
