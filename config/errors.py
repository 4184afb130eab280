"""Error reports to Sentry (or a service that speaks its protocol), only when ``SENTRY_DSN`` is set.

A report leaves the clinic, so nothing in it may name a patient: no request body, cookies,
headers or user, no stack frame's local variables (a frame in a booking service holds the
patient), no log breadcrumb's arguments; what text remains (the address, messages, exception
values) is masked like a log line (``config.redaction``). What is kept is what a developer
needs: the exception's type, the stack's files, functions and lines, the route.
"""

from __future__ import annotations

from typing import Any

from config.redaction import redact_text

# The request's parts a report may keep: the method and the address (masked), nothing sent.
_REQUEST_KEPT = ("method", "url")


def scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's ``before_send`` (and ``before_send_transaction``): the event without patient
    data. Returns the same dict, changed in place."""
    request = event.get("request")
    if isinstance(request, dict):
        event["request"] = {
            key: redact_text(str(request[key])) for key in _REQUEST_KEPT if request.get(key)
        }
    # Who was signed in, and whatever the code or an integration attached.
    for key in ("user", "extra", "tags", "server_name"):
        event.pop(key, None)
    if isinstance(event.get("transaction"), str):
        event["transaction"] = redact_text(event["transaction"])
    for exception in (event.get("exception") or {}).get("values") or []:
        if isinstance(exception.get("value"), str):
            exception["value"] = redact_text(exception["value"])
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for thread in (event.get("threads") or {}).get("values") or []:
        for frame in (thread.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # The format string is the code's; the arguments are data (a name, a phone number).
        logentry.pop("params", None)
        logentry.pop("formatted", None)
        if isinstance(logentry.get("message"), str):
            logentry["message"] = redact_text(logentry["message"])
    if isinstance(event.get("message"), str):
        event["message"] = redact_text(event["message"])
    breadcrumbs = event.get("breadcrumbs")
    crumbs = breadcrumbs.get("values") if isinstance(breadcrumbs, dict) else breadcrumbs
    for crumb in crumbs or []:
        # A SQL breadcrumb's data holds its parameters, a log one its arguments.
        crumb.pop("data", None)
        if isinstance(crumb.get("message"), str):
            crumb["message"] = redact_text(crumb["message"])
    return event


def start_error_reporting(dsn: str, *, environment: str) -> None:
    """Start the SDK (its Django, Celery and logging integrations switch on by themselves)."""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        # Errors only: no performance traces, which would carry every request's address.
        traces_sample_rate=0.0,
        before_send=scrub,  # type: ignore[arg-type]
        before_send_transaction=scrub,  # type: ignore[arg-type]
        before_breadcrumb=_breadcrumb,
    )


def _breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    crumb.pop("data", None)
    if isinstance(crumb.get("message"), str):
        crumb["message"] = redact_text(crumb["message"])
    return crumb
