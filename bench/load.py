"""The whole system under HTTP load, optionally with a fault, and an integrity report after it.

What runs, all on this machine: gunicorn serving the app on 127.0.0.1:8100 (not 8000, which
``make run`` and CI's smoke test use), a Celery worker and beat, against PostgreSQL (a database of
its own, ``chairside_load``, dropped and rebuilt every run) and Redis (broker and cache, a
database number of its own, so no other worker picks up these tasks). Locust (``bench/
locustfile.py``) runs headless for a fixed time with a mixed workload: patients browse
availability and book (a new patient each time, a time the availability offered), the front desk
reschedules and cancels through the staff API with a token from ``manage.py staff_token``.

The clinic: 40 chairs and 40 prescribers working 07:00-21:00 every day, and a 30-minute
consultation bookable online without approval (chair held 40 minutes with turnover), so the 60
days browsed hold about 45,000 visits and bookings do not run out of slots. The clinic books online
bookings at once (``verify_online_bookings`` off): nobody here reads e-mail to confirm a held time.

Faults (``--fault``), started ``--fault-at`` seconds into the run:

- ``redis``: ``redis-cli shutdown nosave``, then after ``--fault-seconds`` (10) Redis is started
  again with the command CI uses;
- ``postgres``: ``pg_ctlcluster … main restart -m fast``;
- ``worker``: SIGKILL to the Celery worker and its pool, then a new worker.

Requests that fail with a dropped connection or a 5xx during the fault are expected and recorded.
Afterwards the worker is given ``--drain`` seconds to deliver what is due, the services are
stopped and ``bench.integrity`` checks the invariants. Fault modes stop and restart services
other developers and CI share: they refuse to start while a CI run or a test suite is running
(``--force`` overrides), and always leave PostgreSQL and Redis running.

Targets (DESIGN §6, 2 cores): >= 500 bookings/s over HTTP, availability p95 <= 50 ms. The load
generator shares the machine with everything it measures; its CPU share is reported.

Steady load (``--rate``, ``bench/load_rate.py``): instead of locust's users, requests at a fixed
arrival rate per route (by default 20 bookings, 200 availability reads, 20 calendar weeks and 50
patient pages a second, a chain's busy hour at ten times its peak; ``--scale`` multiplies them),
each latency measured from the request's intended start, against the same system, then the same
drain and integrity report. Targets (DESIGN §6): p95 availability <= 60 ms, booking <= 150 ms,
calendar <= 200 ms, patient pages <= 100 ms, no errors. Its CPU split reads the same process
groups, the PostgreSQL backends of the load database, and the generator's own process time.

Run: .venv/bin/python -m bench.load [--duration 60] [--users 16] [--fault redis|postgres|worker]
     .venv/bin/python -m bench.load --rate [book=20,availability=200,…] [--scale 1] [--duration 180]
The last line printed is one JSON object with the figures and the integrity report (with
``--rate``: a line per route, then one with every route's percentiles, errors and achieved rate,
the CPU split and the integrity counts); the exit status is 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import time as clock
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import machine_info, percentile, setup_django

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chairside_load"
REDIS_URL = "redis://127.0.0.1:6379/7"
PORT = 8100

LOCATION = "load-clinic"
APPOINTMENT_TYPE = "load-consult"
STAFF_USER = "load-desk"
CHAIRS = 40
PRESCRIBERS = 40
HOURS = (clock(7, 0), clock(21, 0))
DAYS = 60

# Request names as bench/locustfile.py reports them (it is not imported here: locust patches
# the standard library with gevent on import).
AVAILABILITY = "GET /api/v1/availability/"
BOOK = "POST /api/v1/bookings/"

BOOKINGS_TARGET = 500.0
AVAILABILITY_P95_TARGET_MS = 50.0

# The command CI starts Redis with; a fault run restores Redis exactly so.
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- Database and clinic -------------------------------------------------------------------------


def _fresh_database(url: str) -> None:
    """Drop the load database: every run starts from an empty, freshly migrated one."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if "load" not in name:
        sys.exit(f"refusing to drop {name!r}: the load database's name must contain 'load'")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def seed() -> None:
    """The load clinic, its bookable consultation and a front-desk account for the staff API."""
    from django.contrib.auth.models import Group, User
    from django.db import transaction

    from booking.access.roles import Role
    from booking.models import StaffProfile
    from scheduling.models import (
        AppointmentKind,
        AppointmentType,
        Location,
        Resource,
        ResourceKind,
        ResourceRequirement,
        StaffRole,
        WorkingHours,
    )

    with transaction.atomic():
        location = Location.objects.create(
            slug=LOCATION,
            name="Load clinic",
            public_name="Load Health",
            timezone="America/New_York",
            # Online bookings are booked at once here, as a clinic that turns verification off
            # has them: the load measures the booking, its outbox and its integrity, and no
            # locust user reads e-mail to confirm a held time (tests/booking cover that path).
            verify_online_bookings=False,
        )
        resources = Resource.objects.bulk_create(
            [
                Resource(location=location, kind=ResourceKind.CHAIR, name=f"Chair {n + 1}")
                for n in range(CHAIRS)
            ]
            + [
                Resource(
                    location=location,
                    kind=ResourceKind.STAFF,
                    role=StaffRole.PRESCRIBER,
                    name=f"Dr. Load {n + 1}",
                )
                for n in range(PRESCRIBERS)
            ]
        )
        WorkingHours.objects.bulk_create(
            WorkingHours(
                resource=resource,
                location=location,
                weekday=day,
                start=HOURS[0],
                end=HOURS[1],
            )
            for resource in resources
            for day in range(7)
        )
        # A consultation with a chair: the shape of the busiest online path, bookable without
        # an approved plan. Its default reminder rules come with it.
        consult = AppointmentType.objects.create(
            location=location,
            slug=APPOINTMENT_TYPE,
            name="Load consultation",
            public_name="Consultation",
            kind=AppointmentKind.CONSULTATION,
            duration_minutes=30,
            grid_minutes=15,
            min_notice_minutes=60,
            horizon_days=DAYS + 30,
            bookable_online=True,
            needs_approval=False,
        )
        ResourceRequirement.objects.bulk_create(
            [
                ResourceRequirement(
                    appointment_type=consult,
                    resource_kind=ResourceKind.CHAIR,
                    buffer_after_minutes=10,
                ),
                ResourceRequirement(
                    appointment_type=consult,
                    resource_kind=ResourceKind.STAFF,
                    role=StaffRole.PRESCRIBER,
                ),
            ]
        )
        user = User.objects.create(username=STAFF_USER, first_name="Load", last_name="Desk")
        user.set_unusable_password()
        user.save()
        user.groups.add(Group.objects.get(name=Role.FRONT_DESK))
        StaffProfile.objects.create(user=user).locations.set([location])


# --- Processes -----------------------------------------------------------------------------------


class Services:
    """gunicorn, a Celery worker and beat, each in its own process group."""

    def __init__(
        self, env: dict[str, str], out: Path, web_workers: int, concurrency: int, port: int = PORT
    ):
        self.env, self.out, self.port = env, out, port
        self.web_workers, self.concurrency = web_workers, concurrency
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.workers_started = 0

    def _start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        logfile = (self.out / f"{name}.log").open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own executables
            argv,
            cwd=ROOT,
            env=self.env,
            stdout=logfile,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        logfile.close()
        self.procs[name] = proc
        return proc

    def start(self) -> None:
        self._start(
            "web",
            [
                str(BIN / "gunicorn"),
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.web_workers),
                "--backlog",
                "2048",
                "--timeout",
                "60",
                "--log-level",
                "warning",
            ],
        )
        self.start_worker()
        self._start(
            "beat",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "beat",
                "--loglevel=WARNING",
                "--schedule",
                str(self.out / "celerybeat-schedule"),
            ],
        )

    def start_worker(self) -> None:
        self.workers_started += 1
        self._start(
            "worker",
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                f"--concurrency={self.concurrency}",
                f"--hostname=load{self.workers_started}@%h",
            ],
        )

    def kill_worker(self) -> None:
        proc = self.procs["worker"]
        os.killpg(proc.pid, signal.SIGKILL)  # the worker and its pool, as a machine dying would
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def settle(self, name: str, timeout: float = 60) -> None:
        """Wait until one of the services uses (almost) no CPU for a second."""
        deadline = time.monotonic() + timeout
        used = _group_cpu(self.procs[name].pid)
        while time.monotonic() < deadline:
            time.sleep(1)
            used, before = _group_cpu(self.procs[name].pid), used
            if used - before < 0.05:
                return

    def cpu_seconds(self) -> dict[str, float]:
        return {name: _group_cpu(proc.pid) for name, proc in self.procs.items()}


_TICK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: str) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "


def _group_cpu(pgid: int) -> float:
    """CPU seconds used so far by the live processes of one process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(entry)) and int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _comm_cpu(prefix: str) -> float:
    """CPU seconds used so far by every live process whose name starts with ``prefix``."""
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                comm = Path(f"/proc/{entry}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith(prefix) and (fields := _stat_fields(entry)):
                total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _pid_cpu(pid: int) -> float | None:
    fields = _stat_fields(str(pid))
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else None


class BackendCpu:
    """CPU used by the PostgreSQL backends serving one database, over a window.

    Other databases on the same server (CI's, other benchmarks') are busy too, so the backends
    are found by database in ``pg_stat_activity`` every half second; each one's CPU is counted
    from its first reading to its last, so a connection that opens or closes in the window
    counts for the part it was seen (the server's shared processes are not included).
    """

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.database = urlsplit(database_url).path.lstrip("/")
        self.readings: dict[int, tuple[float, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.own_cpu = 0.0

    def _sample(self) -> None:
        import psycopg

        started = time.thread_time()
        with psycopg.connect(self.url, autocommit=True) as conn:
            while True:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.database],
                ).fetchall()
                for (pid,) in rows:
                    if (cpu := _pid_cpu(pid)) is not None:
                        first = self.readings.get(pid, (cpu, cpu))[0]
                        self.readings[pid] = (first, cpu)
                if self.stop.wait(0.5):
                    break
        self.own_cpu = time.thread_time() - started

    def __enter__(self) -> BackendCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def seconds(self) -> float:
        return sum(last - first for first, last in self.readings.values())


def _machine_jiffies() -> tuple[int, int, int]:
    """(busy, total, stolen) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values), values[7]


def _wait_for(check: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            if check():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.2)


def _healthy(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return bool(response.status == 200)


# --- Faults --------------------------------------------------------------------------------------


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    return (done.stdout + done.stderr).strip()


def _redis_up() -> bool:
    return _run(["redis-cli", "-p", "6379", "ping"]) == "PONG"


def _postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0  # noqa: S607


def _pg_cluster() -> list[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def busy_with_tests() -> list[str]:
    """Command lines of CI runs and test suites on this machine (they share our services)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "ci/run" in cmd or "pytest" in cmd:
            found.append(cmd.strip())
    return found


def restore_services() -> None:
    """PostgreSQL and Redis running, whatever a fault left behind."""
    if not _redis_up():
        log("restoring Redis")
        _run(REDIS_START)
        _wait_for(_redis_up, "Redis")
    if not _postgres_up():
        log("restoring PostgreSQL")
        _run([*_pg_cluster(), "start"])
        _wait_for(_postgres_up, "PostgreSQL", timeout=120)


def inject(kind: str, services: Services, seconds: float, timeline: list[dict[str, Any]]) -> None:
    def mark(event: str, **extra: Any) -> None:
        timeline.append({"at": time.time(), "event": event, **extra})
        log(f"fault: {event}")

    if kind == "redis":
        mark("redis shutdown", output=_run(["redis-cli", "-p", "6379", "shutdown", "nosave"]))
        time.sleep(seconds)
        mark("redis start", output=_run(REDIS_START))
        _wait_for(_redis_up, "Redis")
        mark("redis answers PONG")
    elif kind == "postgres":
        mark("postgres restart (fast)")
        output = _run([*_pg_cluster(), "restart", "-m", "fast"])
        _wait_for(_postgres_up, "PostgreSQL", timeout=120)
        mark("postgres ready", output=output)
    elif kind == "worker":
        mark("worker SIGKILL")
        services.kill_worker()
        time.sleep(seconds)
        services.start_worker()
        mark("new worker started")


# --- The run -------------------------------------------------------------------------------------


def run_locust(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    argv = [
        str(BIN / "locust"),
        "-f",
        str(ROOT / "bench" / "locustfile.py"),
        "--headless",
        "--users",
        str(args.users),
        "--spawn-rate",
        str(args.users),
        "--run-time",
        f"{args.duration}s",
        "--host",
        f"http://127.0.0.1:{args.port}",
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--stop-timeout",
        "10",
    ]
    logfile = (args.out / "locust.log").open("wb")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=logfile, stderr=subprocess.STDOUT)  # noqa: S603
    # wait4, not wait(): the client's own CPU time comes with its exit status.
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    logfile.close()
    return {"exit": proc.returncode, "cpu_seconds": usage.ru_utime + usage.ru_stime}


def drain(timeout: float) -> dict[str, Any]:
    """Wait until nothing due is unsent (or ``timeout``); the outbox is read directly."""
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from notifications.models import MessageStatus, OutboundMessage

    started = time.monotonic()
    left = None
    while time.monotonic() - started < timeout:
        try:
            now = timezone.now()
            due = OutboundMessage.objects.filter(status=MessageStatus.PENDING, due_at__lte=now)
            sending = OutboundMessage.objects.filter(status=MessageStatus.SENDING)
            left = {"due_unsent": due.count(), "sending": sending.count()}
            if not any(left.values()):
                break
        except Exception:  # the database may be restarting; reconnect
            close_old_connections()
            connection.close()
        time.sleep(2)
    return {"seconds": round(time.monotonic() - started, 1), "left": left}


def summarize(summary: dict[str, Any], duration_s: float) -> dict[str, Any]:
    requests: dict[str, Any] = {}
    total = 0
    for name, times in summary["latencies_ms"].items():
        total += len(times)
        requests[name] = {
            "count": len(times),
            "statuses": summary["statuses"].get(name, {}),
            "p50_ms": round(percentile(times, 50), 1),
            "p95_ms": round(percentile(times, 95), 1),
            "p99_ms": round(percentile(times, 99), 1),
        }
    booked = requests.get(BOOK, {}).get("statuses", {}).get("201", 0)
    availability_p95 = requests.get(AVAILABILITY, {}).get("p95_ms")
    bookings_per_s = round(booked / duration_s, 1) if duration_s else 0.0
    return {
        "measured_seconds": round(duration_s, 1),
        "requests": requests,
        "requests_per_s": round(total / duration_s, 1) if duration_s else 0.0,
        "bookings_201": booked,
        "bookings_per_s": bookings_per_s,
        "targets": {
            "bookings_per_s": {
                "target": BOOKINGS_TARGET,
                "measured": bookings_per_s,
                "met": bookings_per_s >= BOOKINGS_TARGET,
            },
            "availability_p95_ms": {
                "target": AVAILABILITY_P95_TARGET_MS,
                "measured": availability_p95,
                "met": availability_p95 is not None
                and availability_p95 <= AVAILABILITY_P95_TARGET_MS,
            },
        },
    }


def _cpu_reading(services: Services) -> dict[str, Any]:
    busy, total, steal = _machine_jiffies()
    return {
        "services": services.cpu_seconds(),
        "postgres": _comm_cpu("postgres"),
        "redis": _comm_cpu("redis-server"),
        "busy": busy,
        "total": total,
        "steal": steal,
    }


def cpu_shares(
    before: dict[str, Any], after: dict[str, Any], cores: int, client_cpu: float
) -> dict[str, Any]:
    """Each part's CPU as a share of all cores over the window between two readings."""
    jiffies = after["total"] - before["total"]
    capacity = jiffies / _TICK  # CPU seconds all cores had in the window

    def share(seconds: float) -> float:
        return round(seconds / capacity, 3) if capacity else 0.0

    services_before, services_after = before["services"], after["services"]
    return {
        "cores": cores,
        "window_s": round(jiffies / cores / _TICK, 1),
        "machine_busy_share": round((after["busy"] - before["busy"]) / jiffies, 3),
        "client_share": share(client_cpu),
        "server_share": {
            name: share(services_after.get(name, 0) - services_before.get(name, 0))
            for name in ("web", "worker", "beat")
        },
        # A restarted server's processes are new: their CPU before the restart is gone.
        "postgres_share": share(after["postgres"] - before["postgres"])
        if after["postgres"] >= before["postgres"]
        else None,
        "redis_share": share(max(0.0, after["redis"] - before["redis"])),
        "stolen_share": round((after["steal"] - before["steal"]) / jiffies, 3),
    }


def issue_links(emails: list[str]) -> list[str]:
    """A secure link for each patient booked before the window (booking.links, as the
    confirmation e-mail makes them)."""
    from booking.links import patient_link_issue
    from booking.models import Patient

    return [
        patient_link_issue(patient=patient)
        for patient in Patient.objects.filter(email__in=emails).order_by("pk")
    ]


def run_rate(
    args: argparse.Namespace, services: Services, token: str, journal: Path
) -> dict[str, Any]:
    """The steady-load window (bench.load_rate) with the CPU of every part read around it."""
    from bench import load_rate

    readings: dict[str, dict[str, Any]] = {}
    own: dict[str, resource.struct_rusage] = {}
    backends = BackendCpu(os.environ["DATABASE_URL"])

    def window_edge(edge: str) -> None:
        # This process's CPU is read inside the other readings, which cost it CPU themselves.
        if edge == "start":
            backends.__enter__()
            readings[edge] = _cpu_reading(services)
            own[edge] = resource.getrusage(resource.RUSAGE_SELF)
        else:
            own[edge] = resource.getrusage(resource.RUSAGE_SELF)
            readings[edge] = _cpu_reading(services)
            backends.__exit__()

    clinic = load_rate.Clinic(
        base_url=f"http://127.0.0.1:{args.port}",
        location=LOCATION,
        appointment_type=APPOINTMENT_TYPE,
        staff_token=token,
        days=DAYS,
    )
    figures = load_rate.run(
        clinic,
        rates=args.rates,
        duration=args.duration,
        journal_path=journal,
        patients=args.patients,
        issue_links=issue_links,
        window_edge=window_edge,
    )
    before, after = readings["start"], readings["end"]
    # The generator runs in this process; the sampler thread's own CPU is not the generator's.
    user = own["end"].ru_utime - own["start"].ru_utime
    system = own["end"].ru_stime - own["start"].ru_stime
    generator_cpu = user + system - backends.own_cpu
    cores = len(os.sched_getaffinity(0))
    cpu = cpu_shares(before, after, cores, generator_cpu)
    cpu["generator_share"] = cpu.pop("client_share")
    cpu["generator_cpu_s"] = round(generator_cpu, 2)
    # The kernel's side (a new loopback TCP connection per request: gunicorn's sync workers
    # close each one) is the system part.
    cpu["generator_system_cpu_s"] = round(system, 2)
    requests = sum(route["sent"] for route in figures["routes"].values())
    cpu["generator_cpu_ms_per_request"] = round(generator_cpu * 1000 / requests, 3)
    cpu["postgres_backends_share"] = round(
        backends.seconds() / (cores * cpu["window_s"]) if cpu["window_s"] else 0.0, 3
    )
    cpu["note"] = (
        "shares of all cores over the window; postgres_share is every PostgreSQL process on the "
        "machine (other databases included), postgres_backends_share only the backends of the "
        "load database"
    )
    return {**figures, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    from bench.load_rate import DEFAULT_RATES, parse_rates

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--users", type=int, default=16, help="concurrent locust users")
    parser.add_argument("--wait-ms", type=float, default=0, help="mean think time per user")
    parser.add_argument(
        "--rate",
        nargs="?",
        const=DEFAULT_RATES,
        metavar="SPEC",
        help=f"steady load at fixed rates per route instead of locust (default {DEFAULT_RATES})",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every --rate")
    parser.add_argument(
        "--patients", type=int, default=200, help="patients whose pages --rate reads"
    )
    parser.add_argument("--port", type=int, default=PORT, help="gunicorn's port")
    parser.add_argument("--web-workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes")
    parser.add_argument("--fault", choices=["redis", "postgres", "worker"])
    parser.add_argument("--fault-at", type=float, default=20, help="seconds into the load")
    parser.add_argument("--fault-seconds", type=float, default=10, help="how long it lasts")
    parser.add_argument("--drain", type=float, default=240, help="seconds to let the outbox empty")
    parser.add_argument("--force", action="store_true", help="inject a fault even if tests run")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "load")
    args = parser.parse_args(argv)
    args.rates = None
    if args.rate is not None:
        try:
            args.rates = parse_rates(args.rate, args.scale)
        except ValueError as error:
            parser.error(f"--rate: {error}")
        if args.patients < 1:
            parser.error("--patients: at least 1")

    if args.fault and (running := busy_with_tests()) and not args.force:
        sys.exit(
            "a CI run or test suite shares PostgreSQL and Redis; not injecting a fault now:\n  "
            + "\n  ".join(running[:5])
        )
    if not (_postgres_up() and _redis_up()):
        sys.exit("PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) must be running")

    os.environ.setdefault("DATABASE_URL", DATABASE_URL)
    os.environ.setdefault("REDIS_URL", os.environ.get("LOAD_REDIS_URL", REDIS_URL))
    mode = args.fault or "none"
    args.out = args.out.resolve()
    runtime = args.out / "runtime"  # VAR_DIR of every process: mail/, sms/, secret key
    shutil.rmtree(args.out, ignore_errors=True)
    runtime.mkdir(parents=True)
    journal = args.out / "journal.jsonl"
    summary_path = args.out / "summary.json"
    env = {
        **os.environ,
        "VAR_DIR": str(runtime),
        "SECRET_KEY": secrets.token_urlsafe(64),
        "BOOKINGS_PER_HOUR": "100000000",  # every client shares one address
        "POW_AFTER_ATTEMPTS": "100000000",  # nor does it solve proofs of work (booking.pow)
        "LOG_LEVEL": "WARNING",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{args.port}",
        # A dead worker's claims come back after 30 s instead of 5 minutes, within the drain.
        "OUTBOX_STALE_CLAIM_SECONDS": "30",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    os.environ.update({k: env[k] for k in ("VAR_DIR", "SECRET_KEY", "OUTBOX_STALE_CLAIM_SECONDS")})

    log(f"fresh database {urlsplit(os.environ['DATABASE_URL']).path.lstrip('/')}")
    _fresh_database(os.environ["DATABASE_URL"])
    setup_django()
    seed()
    token = _run([sys.executable, str(ROOT / "manage.py"), "staff_token", STAFF_USER]).split()[-1]
    if args.rates and "patient" in args.rates:
        # The patient pages name their static files by the hashed names collectstatic writes.
        log("collectstatic")
        _run([sys.executable, str(ROOT / "manage.py"), "collectstatic", "--noinput", "-v", "0"])
    info = machine_info()
    # Redis db of the run: nothing of an earlier run (queued tasks, rate-limit windows) remains.
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()

    services = Services(env, args.out, args.web_workers, args.concurrency, args.port)
    timeline: list[dict[str, Any]] = []
    fault_thread = None
    steady: dict[str, Any] | None = None
    try:
        services.start()
        _wait_for(lambda: _healthy(args.port), f"gunicorn on port {args.port}")
        if args.rates:
            log(f"load: {args.rates} per s for {args.duration} s, fault: {mode}")
        else:
            log(
                f"load: {args.users} users for {args.duration} s, {args.web_workers} web workers, "
                f"fault: {mode}"
            )
        locust_env = {
            **env,
            "LOAD_LOCATION": LOCATION,
            "LOAD_TYPE": APPOINTMENT_TYPE,
            "LOAD_TOKEN": token,
            "LOAD_DAYS": str(DAYS),
            "LOAD_JOURNAL": str(journal),
            "LOAD_SUMMARY": str(summary_path),
            "LOAD_WAIT_MS": str(args.wait_ms),
        }
        if args.fault:

            def fault() -> None:
                time.sleep(args.fault_at)
                inject(args.fault, services, args.fault_seconds, timeline)

            fault_thread = threading.Thread(target=fault, daemon=True)
        if args.rates:
            if fault_thread is not None:
                fault_thread.start()  # the setup before the window adds a few seconds
            steady = run_rate(args, services, token, journal)
            log("load done; waiting for gunicorn to go idle, then draining the outbox")
            # Requests the client gave up on may still be in gunicorn's queue, and a booking
            # among them commits (and plans messages) after the client's last answer.
            services.settle("web")
        else:
            before = _cpu_reading(services)
            if fault_thread is not None:
                fault_thread.start()
            client = run_locust(args, locust_env)
            after = _cpu_reading(services)
            log(f"load done (locust exit {client['exit']}); draining the outbox")
        if fault_thread is not None:
            fault_thread.join()
        drained = drain(args.drain)
        log(f"drain: {drained}")
    finally:
        services.stop()
        if args.fault:
            restore_services()

    from django.db import connection

    connection.close()  # a restarted server dropped it
    from bench.integrity import integrity_report

    report = integrity_report(
        journal_path=journal,
        var_dir=runtime,
        location_slug=LOCATION,
        require_drained=True,
        # One SIGKILL can catch each of the worker's processes in a send.
        senders_killed=args.concurrency if args.fault == "worker" else 0,
    )
    settings = {
        "duration_s": args.duration,
        "web_workers": args.web_workers,
        "worker_concurrency": args.concurrency,
        "fault_at_s": args.fault_at if args.fault else None,
        "fault_seconds": args.fault_seconds if args.fault else None,
    }
    if steady is not None:
        return report_rate(args, steady, info, settings, timeline, drained, report)

    summary = json.loads(summary_path.read_text())
    measured = (summary["last_response_at"] or 0) - (summary["first_request_at"] or 0)
    figures = summarize(summary, measured)
    figures["cpu"] = cpu_shares(before, after, info["cores"] or 1, client["cpu_seconds"])
    figures["cpu"]["note"] = (
        "shares of all cores over the load window; the worker's restarts lose its CPU"
    )
    result = {
        "benchmark": "load",
        "fault": mode,
        "machine": info,
        "settings": {**settings, "users": args.users, "wait_ms": args.wait_ms},
        **figures,
        "fault_timeline": [
            {**event, "at_s": round(event["at"] - (summary["first_request_at"] or 0), 1)}
            for event in timeline
        ],
        "drain": drained,
        "integrity": report,
    }
    (args.out / f"result-{mode}.json").write_text(json.dumps(result, indent=2, default=str))
    for name, figures_of in result["requests"].items():
        log(
            f"{name}: n={figures_of['count']} p50={figures_of['p50_ms']} ms "
            f"p95={figures_of['p95_ms']} ms p99={figures_of['p99_ms']} ms "
            f"{figures_of['statuses']}"
        )
    log(
        f"bookings/s {result['bookings_per_s']} (target {BOOKINGS_TARGET:.0f}), "
        f"requests/s {result['requests_per_s']}, cpu {result['cpu']}"
    )
    log("integrity: " + ("OK" if report["ok"] else "VIOLATIONS " + "; ".join(report["violations"])))
    print(json.dumps(result, default=str))
    print(json.dumps(headline(result)))
    return 0 if report["ok"] else 1


def report_rate(
    args: argparse.Namespace,
    steady: dict[str, Any],
    info: dict[str, Any],
    settings: dict[str, Any],
    timeline: list[dict[str, Any]],
    drained: dict[str, Any],
    report: dict[str, Any],
) -> int:
    """The steady-load run: the whole result in ``result-rate-<fault>.json``, a JSON line per
    route, and last a summary line with every route's figures, the CPU split and integrity."""
    mode = args.fault or "none"
    started = steady["window"]["started_at"]
    result = {
        "benchmark": "load-rate",
        "fault": mode,
        "machine": info,
        "settings": {**settings, "rates": args.rates, "scale": args.scale},
        **steady,
        "fault_timeline": [
            {**event, "at_s": round(event["at"] - started, 1)} for event in timeline
        ],
        "drain": drained,
        "integrity": report,
    }
    (args.out / f"result-rate-{mode}.json").write_text(json.dumps(result, indent=2, default=str))
    log("integrity: " + ("OK" if report["ok"] else "VIOLATIONS " + "; ".join(report["violations"])))
    for route, figures in steady["routes"].items():
        print(json.dumps({"bench": "load-rate", "key": route, **figures}))
    print(json.dumps(rate_headline(result)))
    return 0 if report["ok"] else 1


def rate_headline(result: dict[str, Any]) -> dict[str, Any]:
    """The steady-load run in one line: per route the rates, percentiles and errors against the
    p95 target, the CPU split, and the integrity counts that must be zero."""
    keep = ("offered_per_s", "achieved_per_s", "p50_ms", "p95_ms", "p99_ms", "errors")
    cpu = result["cpu"]
    return {
        "bench": "load-rate",
        "fault": result["fault"],
        "duration_s": result["settings"]["duration_s"],
        "routes": {
            route: {
                **{key: figures[key] for key in keep},
                "conflicts": figures["conflicts"],
                "p95_target_ms": figures["p95_target_ms"],
                "met": figures["p95_met"] and figures["errors"] == 0,
            }
            for route, figures in result["routes"].items()
        },
        # Shares of both cores over the window; PostgreSQL counts the load database's backends
        # (the server's other databases belong to other work on the machine).
        "cpu": {
            "web": cpu["server_share"]["web"],
            "worker": cpu["server_share"]["worker"],
            "beat": cpu["server_share"]["beat"],
            "postgres": cpu["postgres_backends_share"],
            "redis": cpu["redis_share"],
            "generator": cpu["generator_share"],
            "machine_busy": cpu["machine_busy_share"],
        },
        "generator_send_lag_ms": result["generator_send_lag_ms"],
        **integrity_counts(result["integrity"]),
    }


def integrity_counts(integrity: dict[str, Any]) -> dict[str, Any]:
    """The integrity counts that must be zero, and the verdict."""
    overlaps, bookings, sends = integrity["overlaps"], integrity["bookings"], integrity["sends"]
    return {
        "overlaps": overlaps["overlapping_allocations"] + overlaps["overlapping_patient_visits"],
        "lost": bookings["lost"],
        "duplicate_messages": sends["rows_sent_twice"]
        + sends["messages_delivered_more_than_once"]
        + sends["output_duplicate_messages"],
        "integrity_ok": integrity["ok"],
    }


def headline(result: dict[str, Any]) -> dict[str, Any]:
    """The run in one line (the last one printed): throughput, availability p95 and the three
    integrity counts that must be zero; the whole report is the line before it."""
    return {
        "bench": "load",
        "fault": result["fault"],
        "bookings_per_s": result["bookings_per_s"],
        "availability_p95_ms": result["requests"]
        .get("GET /api/v1/availability/", {})
        .get("p95_ms"),
        **integrity_counts(result["integrity"]),
    }


if __name__ == "__main__":
    sys.exit(main())
