"""gunicorn as Compose and the image start it (config.gunicorn): its access log masks secure-link
tokens and query values, in the request line, the path and the Referer; its error log too."""

from __future__ import annotations

import io
import logging
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from gunicorn.config import Config

import config.gunicorn as gunicorn_settings
from config.redaction import MASK

ROOT = Path(__file__).resolve().parents[2]
TOKEN = secrets.token_urlsafe(32)


def configured(**overrides: Any) -> Config:
    """gunicorn's configuration from config/gunicorn.py, as ``--config python:…`` loads it."""
    cfg = Config()
    for name, value in vars(gunicorn_settings).items():
        if name in cfg.settings:
            cfg.set(name, value)
    for name, value in overrides.items():
        cfg.set(name, value)
    return cfg


def into(log: logging.Logger, buffer: io.StringIO) -> None:
    """Point gunicorn's own handlers of ``log`` (not pytest's beside them) at ``buffer``."""
    for handler in log.handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "_gunicorn", False):
            handler.setStream(buffer)


@pytest.fixture
def logged() -> Iterator[tuple[Any, io.StringIO, io.StringIO]]:
    """The configured logger, writing its access and error logs into two buffers."""
    logger = configured().logger_class(configured())
    access, errors = io.StringIO(), io.StringIO()
    into(logger.access_log, access)
    into(logger.error_log, errors)
    yield logger, access, errors
    for log in (logger.access_log, logger.error_log):
        for handler in list(log.handlers):
            if getattr(handler, "_gunicorn", False):
                log.removeHandler(handler)


def serve(logger: Any, raw_uri: str, referer: str = "-") -> None:
    path, _, query = raw_uri.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": raw_uri,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "172.18.0.1",
        "HTTP_REFERER": referer,
        "HTTP_USER_AGENT": "Mozilla/5.0",
    }
    request = SimpleNamespace(headers=[("REFERER", referer), ("USER-AGENT", "Mozilla/5.0")])
    response = SimpleNamespace(status="200 OK", sent=512, headers=[])
    logger.access(response, request, environ, timedelta(milliseconds=12))


def test_the_access_log_masks_a_secure_link_and_its_referer(logged):
    logger, access, _errors = logged

    serve(logger, f"/a/{TOKEN}/", referer="-")
    serve(logger, "/static/booking/site.css", referer=f"https://book.clinic.example/a/{TOKEN}/")
    serve(logger, f"/w/{TOKEN}/accept/?from=sms")

    lines = access.getvalue().splitlines()
    assert TOKEN not in access.getvalue()
    assert f'"GET /a/{MASK}/ HTTP/1.1" 200 512' in lines[0]
    assert f'"https://book.clinic.example/a/{MASK}/"' in lines[1]
    assert f'"GET /w/{MASK}/accept/?from={MASK} HTTP/1.1"' in lines[2]


def test_the_access_log_masks_what_the_desk_searched_for(logged):
    logger, access, _errors = logged

    serve(logger, "/api/v1/patients/?q=Ada+Lovelace", referer="https://x.example/?q=1985-12-10")

    line = access.getvalue()
    assert "Ada" not in line
    assert "1985" not in line
    assert f"/api/v1/patients/?q={MASK}" in line


def test_a_custom_format_of_the_same_atoms_is_masked_too():
    cfg = configured(access_log_format="%(U)s?%(q)s %({referer}i)s %({raw_uri}e)s")
    logger = cfg.logger_class(cfg)
    access = io.StringIO()
    into(logger.access_log, access)

    serve(logger, f"/a/{TOKEN}/?q=Ada", referer=f"/a/{TOKEN}/")

    assert access.getvalue().strip() == (f"/a/{MASK}/?q={MASK} /a/{MASK}/ /a/{MASK}/?q={MASK}")


def test_the_error_log_masks_the_request_it_failed_on(logged):
    logger, _access, errors = logged

    logger.error("Error handling request %s", f"/a/{TOKEN}/?q=Ada")
    logger.setup(logger.cfg)  # a reload (HUP) sets up again: still one filter
    into(logger.error_log, errors)
    logger.error("Error handling request %s", f"/w/{TOKEN}/")

    assert TOKEN not in errors.getvalue()
    assert "Ada" not in errors.getvalue()
    assert len(logger.error_log.filters) == 1


def test_gunicorn_loads_the_settings_module_as_compose_names_it(tmp_path):
    printed = subprocess.run(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--config",
            "python:config.gunicorn",
            "--print-config",
        ],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert printed.returncode == 0, printed.stderr
    settings = {}
    for line in printed.stdout.splitlines():
        name, equals, value = line.partition("=")
        if equals:
            settings[name.strip()] = value.strip()
    assert settings["logger_class"] == "config.gunicorn.RedactingLogger"
    assert settings["accesslog"] == "-"


# --- How it is started --------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_and_the_image_start_gunicorn_with_these_settings():
    command = compose()["services"]["web"]["command"]
    image = (ROOT / "Dockerfile").read_text()

    assert command[:2] == ["gunicorn", "config.wsgi:application"]
    assert "python:config.gunicorn" in command
    assert command[command.index("python:config.gunicorn") - 1] == "--config"
    assert '"--config", "python:config.gunicorn"' in image


def test_compose_publishes_the_app_on_the_loopback_unless_told_otherwise():
    (published,) = compose()["services"]["web"]["ports"]

    assert published == "${WEB_BIND:-127.0.0.1}:${WEB_PORT:-8000}:8000"
