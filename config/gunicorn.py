"""gunicorn's settings: ``gunicorn config.wsgi:application --config python:config.gunicorn``
(docker-compose.yml and the Dockerfile start it so; the command line adds the bind and workers).

gunicorn reads every module-level name that is one of its settings (``accesslog``,
``logger_class``…) and ignores the rest. Its access log would otherwise write each request's
address, query string and Referer as they came: ``GET /a/<token>/`` hands a patient's secure
link to whoever reads the logs, ``GET /api/v1/patients/?q=<name>`` whom the desk looked up. The
logger below masks both (config.redaction), in the access log and in gunicorn's own error log
("Error handling request /a/<token>/").
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gunicorn import glogging

from config.redaction import RedactingFilter, redact_query, redact_text

# Access log lines to standard output, in the usual combined format (whose %(r)s and %(f)s, the
# request line and the Referer, arrive masked).
accesslog = "-"
logger_class = "config.gunicorn.RedactingLogger"

# Every atom of a log line that can hold an address: the request line, the path, the Referer,
# and their raw forms from the request's headers ({name}i) and WSGI environ ({name}e).
_ADDRESS_ATOMS = (
    "r",
    "U",
    "f",
    "{referer}i",
    "{raw_uri}e",
    "{path_info}e",
    "{http_referer}e",
    "{request_uri}e",
)
# The query string alone, without its "?".
_QUERY_ATOMS = ("q", "{query_string}e")


class RedactingLogger(glogging.Logger):
    """gunicorn's logger with secure-link tokens and query values masked."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # setup runs again on every configuration reload (HUP): one filter is enough.
        if not any(isinstance(f, RedactingFilter) for f in self.error_log.filters):
            self.error_log.addFilter(RedactingFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: timedelta) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key in _ADDRESS_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_text(atoms[key])
        for key in _QUERY_ATOMS:
            if isinstance(atoms.get(key), str):
                atoms[key] = redact_query(atoms[key])
        return atoms
