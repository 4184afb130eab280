"""Refresh the README's screenshots from a live demo clinic.

    .venv/bin/python docs/screenshots/refresh.py

Seeds the demo clinic into a scratch directory (its own SQLite database and mail folders, so a
running ``make run`` is untouched), serves it with ``runserver`` on a free port of its own, and
photographs in Debian's Chromium: the day board, the calendar's resource timeline, and a
patient's secure link on a phone-sized screen. The server is this script's own child, checked by
its process and port, and stopped at the end.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
DESK = ("desk", os.environ.get("DEMO_STAFF_PASSWORD", "chairside-demo"))

# A patient of the demo with visits to come, and a fresh link to their page (only its hash is
# stored, so the token is printed here once).
_LINK = """
from django.utils import timezone
from booking.links import patient_link_issue
from booking.models import Appointment
visit = (Appointment.objects.active().filter(start__gt=timezone.now())
         .exclude(series=None).order_by("start").first()
         or Appointment.objects.active().filter(start__gt=timezone.now()).order_by("start").first())
print(patient_link_issue(patient=visit.patient))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [PYTHON, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"runserver (pid {server.pid}) exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit(f"runserver (pid {server.pid}) did not listen on {port} in 30 s")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="chairside-shots-") as scratch:
        env = {
            **os.environ,
            "VAR_DIR": scratch,
            "DEBUG": "true",
        }
        for embedded in ("DATABASE_URL", "REDIS_URL"):
            env.pop(embedded, None)
        _manage(env, "migrate", "--noinput")
        _manage(env, "seed_demo")
        token = _manage(env, "shell", "-c", _LINK).strip().splitlines()[-1]
        port = _free_port()
        server = _serve(env, port)
        base = f"http://127.0.0.1:{port}"
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                desk = browser.new_page(viewport={"width": 1366, "height": 900})
                desk.goto(f"{base}/staff/login/")
                desk.get_by_label("Username").fill(DESK[0])
                desk.get_by_label("Password").fill(DESK[1])
                desk.get_by_role("button", name="Sign in").click()
                if desk.get_by_role("heading", name="Two-factor sign-in").is_visible():
                    # The demo accounts share the published demo authenticator secret.
                    desk.get_by_label("Code").fill(_manage(env, "demo_code").strip())
                    desk.get_by_role("button", name="Verify").click()
                desk.goto(f"{base}/staff/board/?location=riverside")
                desk.screenshot(path=OUT / "day-board.png", full_page=True)
                desk.goto(f"{base}/staff/calendar/?location=riverside&view=day&by=all")
                desk.locator(".ec-event").first.wait_for()
                desk.screenshot(path=OUT / "resource-timeline.png")
                phone = browser.new_page(
                    viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True
                )
                phone.goto(f"{base}/a/{token}/")
                phone.screenshot(path=OUT / "patient-phone.png")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"wrote {OUT / 'day-board.png'}, resource-timeline.png and patient-phone.png")


if __name__ == "__main__":
    main()
