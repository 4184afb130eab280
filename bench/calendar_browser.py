"""The staff calendar in a real browser: navigation to painted events, page turns, the event panel.

Run against PostgreSQL (the 50-staff clinic of ``bench/calendar.py`` is built on first run and
reused afterwards)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/chairside_bench_cal \\
        .venv/bin/python -m bench.calendar_browser

The page is served by a server this script starts (``--serve``, a child process on a port the
child binds and reports, so the figures never come from whatever else answers on a port) and
opened in Debian's Chromium through Playwright, signed in as the clinic's front desk. For the
week of 2026-10-26 (the week ``bench/calendar.py`` measures) it times, from navigation to the
events painted (``performance.mark("calendar-painted")`` in ``calendar.js``, set after the next
frame once the library has drawn): the week timeline by staff, the day timeline, one resource's
week, and the week with a column per staff member and day, every column drawn at once: the
page as it was before the timelines, the baseline of the ratios. Then the "next week" button to
painted and a click on a visit to its panel, the longest task the browser saw (a
``PerformanceObserver`` of long tasks, added before the page's own scripts) and the JS heap
after each. Beside them, where the time goes (the page before its request, the request and its
JSON, the library's drawing) and two floors: the library drawing the same rows with no event,
and the in-process endpoint. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from bench.availability import timed
from bench.calendar import FIRST_DAY, LAST_DAY, SLUG, USERNAME, ensure_data
from bench.common import machine_info, percentile, setup_django

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--enable-precise-memory-info",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 1000}  # a desk's screen
PAINT_TIMEOUT_MS = 120_000  # the baseline takes many seconds on two cores
# What users feel (docs: DESIGN.md §6, the issue): the targets the figures are read against.
# Each as (the figure printed, its limit in milliseconds).
TARGETS = {
    "week_painted_ms": 1000,
    "day_painted_ms": 300,
    "longest_task_ms": 200,
    "next_week_ms": 1000,
}

# Before any script of the page: every long task from the start, in one list.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({type: "longtask", buffered: true});
"""

MARKS = """() => {
  const at = (name) => {
    const marks = performance.getEntriesByName(name);
    return marks.length ? marks[marks.length - 1].startTime : null;
  };
  return {
    fetch: at("calendar-fetch"), data: at("calendar-data"), painted: at("calendar-painted"),
    events: document.querySelectorAll("#calendar .ec-event").length,
    longest: Math.max(0, ...window.__longTasks),
    heapMiB: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null,
  };
}"""

# Click, then wait for the calendar's next painting of another week.
NEXT_WEEK = """() => new Promise((done) => {
  const calendar = document.getElementById("calendar");
  const before = calendar.getAttribute("data-painted");
  const started = performance.now();
  window.__longTasks.length = 0;
  new MutationObserver((changes, observer) => {
    if (calendar.getAttribute("data-painted") !== before) {
      observer.disconnect();
      done({ms: performance.now() - started, painted: calendar.getAttribute("data-painted")});
    }
  }).observe(calendar, {attributes: true, attributeFilter: ["data-painted"]});
  document.querySelector(".ec-toolbar .ec-next").click();
})"""

# Click the first visit, then wait for its panel to be shown and painted.
OPEN_PANEL = """() => new Promise((done) => {
  const visit = document.querySelector("#calendar .ec-event.cs-kind-visit");
  const panel = document.getElementById("event-panel");
  const started = performance.now();
  visit.click();
  const check = () => {
    if (!panel.hidden) {
      requestAnimationFrame(() => setTimeout(() => done(performance.now() - started), 0));
    } else {
      requestAnimationFrame(check);
    }
  };
  check();
})"""

# The library alone: the same number of rows over the same week, no event at all.
EMPTY_RENDER = """([rows, view, day]) => new Promise((done) => {
  const holder = document.createElement("div");
  document.body.appendChild(holder);
  const resources = [];
  for (let n = 1; n <= rows; n++) resources.push({id: n, title: "Row " + n});
  const started = performance.now();
  const calendar = EventCalendar.create(holder, {
    view: view, date: day, timeZone: "UTC", resources: resources, events: [],
    slotMinTime: "06:00", slotMaxTime: "21:00",
  });
  requestAnimationFrame(() => setTimeout(() => {
    const ms = performance.now() - started;
    EventCalendar.destroy(calendar);
    holder.remove();
    done(ms);
  }, 0));
})"""


# --- The server: a child process owning its port --------------------------------------------


def serve() -> None:
    """The child: the project's WSGI application on 127.0.0.1 and a port the system gives,
    reported on stdout as ``serving <port> <pid>`` once bound."""
    setup_django()
    from django.conf import settings

    # The pages link plain static names and WhiteNoise finds them in the apps' folders, as
    # under DEBUG, without DEBUG's other costs (no collectstatic run for a benchmark).
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = True
    from django.core.servers.basehttp import (
        ThreadedWSGIServer,
        WSGIRequestHandler,
        get_internal_wsgi_application,
    )

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
    httpd.set_app(get_internal_wsgi_application())
    print(f"serving {httpd.server_address[1]} {os.getpid()}", flush=True)
    httpd.serve_forever()


def start_server() -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.calendar_browser", "--serve"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    line = child.stdout.readline().split() if child.stdout is not None else []
    if len(line) != 3 or line[0] != "serving" or int(line[2]) != child.pid:
        child.kill()
        sys.exit(f"the server did not start: {line!r}")
    return child, f"http://127.0.0.1:{int(line[1])}"


def stop_server(child: subprocess.Popen[str]) -> None:
    child.terminate()
    try:
        child.wait(timeout=10)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# --- Measurement --------------------------------------------------------------------------------


def session_cookie() -> str:
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=USERNAME))
    return client.cookies["sessionid"].value


def endpoint_ms(iterations: int) -> float:
    """The endpoint's own time in process for the week by staff (as ``bench.calendar``)."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIRequestFactory, force_authenticate

    from booking.api.calendar import CalendarData

    view = CalendarData.as_view()
    factory = APIRequestFactory()
    params = {
        "location": SLUG,
        "start": FIRST_DAY.isoformat(),
        "end": LAST_DAY.isoformat(),
        "by": "staff",
    }
    user = User.objects.get(username=USERNAME)

    def call(_: Any) -> None:
        request = factory.get("/api/v1/calendar/", params)
        force_authenticate(request, user=user)
        response = view(request)
        if response.status_code != 200:
            sys.exit(f"the calendar answered {response.status_code}")

    for _ in range(3):
        call(None)
    samples, _ = timed(call, iterations)
    return percentile(samples, 50)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=3, help="page loads per view (median)")
    parser.add_argument("--baseline-runs", type=int, default=2)
    parser.add_argument("--rebuild", action="store_true", help="drop and rebuild the data")
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    if not os.path.exists(CHROMIUM):
        sys.exit(f"Chromium not installed at {CHROMIUM}: apt-get install chromium")
    setup_django()
    from playwright.sync_api import sync_playwright

    from booking.calendar import calendar_load
    from scheduling.models import Location

    info = machine_info()
    print("machine:", ", ".join(f"{k}={v}" for k, v in info.items()))
    built = ensure_data(args.rebuild)
    print(f"data: built in {built:.1f} s" if built else "data: reused")
    location = Location.objects.get(slug=SLUG)
    week = calendar_load(location=location, first_day=FIRST_DAY, last_day=LAST_DAY, by="staff")
    staff = week["resources"]
    one = next((r for r in staff if r.get("lanes", 1) > 1), staff[0])
    print(
        f"week {FIRST_DAY}..{LAST_DAY}: {len(staff)} staff rows, {len(week['events'])} events; "
        f"one resource: {one['title']} (#{one['id']})"
    )
    endpoint = endpoint_ms(20)
    cookie = session_cookie()

    base = f"/staff/calendar/?location={SLUG}&by=staff&date={FIRST_DAY.isoformat()}"
    pages = {
        "baseline_columns": base + "&view=columns",
        "week": base + "&view=week",
        "day": base + "&view=day",
        "one_resource_week": base + f"&view=week&resource={one['id']}",
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in pages}
    extras: dict[str, list[float]] = {"next_week": [], "next_week_longest": [], "panel": []}
    floors: dict[str, float] = {}

    child, origin = start_server()
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

            def open_page(path: str) -> Any:
                context = browser.new_context(viewport=VIEWPORT, locale="en-US")
                context.add_cookies([{"name": "sessionid", "value": cookie, "url": origin}])
                context.add_init_script(LONG_TASKS)
                page = context.new_page()
                page.goto(origin + path)
                page.wait_for_selector(
                    "#calendar[data-painted]", state="attached", timeout=PAINT_TIMEOUT_MS
                )
                return page

            open_page(pages["week"]).context.close()  # warm-up: the server's first answers
            for name, path in pages.items():
                runs = args.baseline_runs if name == "baseline_columns" else args.runs
                for _ in range(runs):
                    page = open_page(path)
                    results[name].append(page.evaluate(MARKS))
                    if name == "week":
                        turn = page.evaluate(NEXT_WEEK)
                        extras["next_week"].append(turn["ms"])
                        extras["next_week_longest"].append(
                            page.evaluate("() => Math.max(0, ...window.__longTasks)")
                        )
                    if name == "day":
                        extras["panel"].append(page.evaluate(OPEN_PANEL))
                    if name == "week" and not floors:
                        rows = page.evaluate(
                            "() => document.querySelectorAll('#calendar .ec-row-head').length"
                        )
                        floors["empty_week_timeline_render_ms"] = page.evaluate(
                            EMPTY_RENDER, [rows, "resourceTimelineWeek", FIRST_DAY.isoformat()]
                        )
                        floors["empty_day_timeline_render_ms"] = page.evaluate(
                            EMPTY_RENDER, [rows, "resourceTimelineDay", FIRST_DAY.isoformat()]
                        )
                    page.context.close()
            browser.close()
    finally:
        stop_server(child)

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    summary: dict[str, Any] = {"bench": "calendar_browser", "endpoint_p50_ms": round(endpoint, 2)}
    for name, samples in results.items():
        painted = median([s["painted"] for s in samples])
        summary[f"{name}_painted_ms"] = painted
        summary[f"{name}_page_ms"] = median([s["fetch"] for s in samples])
        summary[f"{name}_request_json_ms"] = median([s["data"] - s["fetch"] for s in samples])
        summary[f"{name}_draw_ms"] = median([s["painted"] - s["data"] for s in samples])
        summary[f"{name}_longest_task_ms"] = median([s["longest"] for s in samples])
        summary[f"{name}_heap_mib"] = median([s["heapMiB"] or 0 for s in samples])
        summary[f"{name}_events_drawn"] = samples[0]["events"]
        print(
            f"{name}: painted {painted:.0f} ms (page {summary[f'{name}_page_ms']:.0f}, request + "
            f"JSON {summary[f'{name}_request_json_ms']:.0f}, drawing "
            f"{summary[f'{name}_draw_ms']:.0f}), longest task "
            f"{summary[f'{name}_longest_task_ms']:.0f} ms, heap "
            f"{summary[f'{name}_heap_mib']:.0f} MiB, {samples[0]['events']} events drawn, "
            f"n={len(samples)}"
        )
    summary["next_week_ms"] = median(extras["next_week"])
    summary["next_week_longest_task_ms"] = median(extras["next_week_longest"])
    summary["panel_open_ms"] = median(extras["panel"])
    summary.update({k: round(v, 1) for k, v in floors.items()})
    baseline = summary["baseline_columns_painted_ms"]
    for name in ("week", "day", "one_resource_week"):
        summary[f"ratio_baseline_vs_{name}"] = round(baseline / summary[f"{name}_painted_ms"], 1)
    summary["longest_task_ms"] = max(
        summary[f"{name}_longest_task_ms"] for name in ("week", "day", "one_resource_week")
    )
    summary["targets_missed"] = [name for name, limit in TARGETS.items() if summary[name] > limit]
    print(
        f"next week: {summary['next_week_ms']:.0f} ms; event panel: "
        f"{summary['panel_open_ms']:.0f} ms; endpoint in process: {endpoint:.1f} ms; the library "
        f"with no event: week {floors.get('empty_week_timeline_render_ms', 0):.0f} ms, day "
        f"{floors.get('empty_day_timeline_render_ms', 0):.0f} ms"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
