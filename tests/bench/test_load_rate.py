"""The steady-load generator's pure parts (bench.load_rate): the rate spec, the schedule of
intended send times, the per-route figures, and latency taken from the intended time."""

import asyncio
import io

import pytest

from bench.load_rate import (
    DEFAULT_RATES,
    Clinic,
    Generator,
    intended_times,
    parse_rates,
    route_figures,
)


def test_the_default_spec_is_the_busy_hour_at_ten_times_its_peak():
    assert parse_rates(DEFAULT_RATES) == {
        "book": 20.0,
        "availability": 200.0,
        "calendar": 20.0,
        "patient": 50.0,
    }


def test_scale_multiplies_every_rate_and_a_zero_rate_leaves_the_route_out():
    assert parse_rates("book=20, availability=200,calendar=0", scale=0.1) == {
        "book": 2.0,
        "availability": 20.0,
    }


@pytest.mark.parametrize(
    ("spec", "scale", "message"),
    [
        ("books=20", 1.0, "unknown route 'books'"),
        ("book=fast", 1.0, "book: rate 'fast' is not a number"),
        ("book=-1", 1.0, "book: rate must be a non-negative number"),
        ("book=nan", 1.0, "book: rate must be a non-negative number"),
        ("book=1,book=2", 1.0, "route 'book' is given twice"),
        ("book", 1.0, "expected route=rate"),
        ("book=0", 1.0, "no route has a rate above 0"),
        ("book=1", 0.0, "scale must be a positive number"),
    ],
)
def test_a_bad_spec_is_refused_naming_what_is_wrong(spec, scale, message):
    with pytest.raises(ValueError, match=message):
        parse_rates(spec, scale)


def test_requests_are_due_evenly_at_the_rate_from_the_phase():
    times = intended_times(4, 2.0, phase=0.1)

    assert times == pytest.approx([0.1, 0.35, 0.6, 0.85, 1.1, 1.35, 1.6, 1.85])


def test_the_schedule_holds_rate_times_duration_requests_all_before_the_end():
    assert len(intended_times(200, 300)) == 60_000
    odd = intended_times(3, 1.5)
    assert odd == pytest.approx([0, 1 / 3, 2 / 3, 1.0, 4 / 3])
    assert intended_times(0, 10) == []


def test_figures_give_percentiles_errors_conflicts_and_the_achieved_rate():
    figures = route_figures(
        [float(ms) for ms in range(1, 101)],
        {"201": 90, "409": 6, "500": 1, "timeout": 3},
        route="book",
        offered_per_s=2.0,
        duration_s=50.0,
    )

    assert figures["p50_ms"] == 50.5
    assert figures["p95_ms"] == 95.0  # 95.05, to a tenth of a millisecond
    assert figures["p99_ms"] == 99.0
    assert figures["max_ms"] == 100.0
    assert (figures["sent"], figures["ok"], figures["conflicts"], figures["errors"]) == (
        100,
        90,
        6,
        4,
    )
    assert figures["achieved_per_s"] == 1.8
    assert figures["p95_target_ms"] == 150.0
    assert figures["p95_met"] is True


def test_a_409_is_an_error_on_a_route_that_never_expects_one():
    figures = route_figures(
        [10.0, 300.0], {"200": 1, "409": 1}, route="calendar", offered_per_s=1, duration_s=2
    )

    assert (figures["conflicts"], figures["errors"]) == (0, 1)
    assert figures["p95_met"] is False


def _generator() -> Generator:
    clinic = Clinic(
        base_url="http://127.0.0.1:9", location="x", appointment_type="y", staff_token="", days=9
    )
    return Generator(clinic, io.StringIO())


def test_requests_go_out_on_schedule_while_earlier_ones_wait_and_their_wait_is_latency():
    generator = _generator()
    started = 0
    every_one_sent = asyncio.Event()

    async def stalled_server() -> int:
        # No request is answered until all ten were sent: a client that waits for an answer
        # before sending the next one would never get there (and time out).
        nonlocal started
        started += 1
        if started == 10:
            every_one_sent.set()
        async with asyncio.timeout(5):
            await every_one_sent.wait()
        return 200

    generator.availability = stalled_server  # type: ignore[method-assign]
    asyncio.run(generator.run({"availability": 20.0}, 0.5))

    samples = generator.samples["availability"]
    assert samples.statuses == {"200": 10}
    # The first was due 0.45 s before the last was even sent: all of that is its latency.
    assert max(samples.latencies_ms) >= 450
    assert min(samples.latencies_ms) >= 0


def test_a_request_with_no_answer_is_a_timeout_error_counted_at_the_time_waited(monkeypatch):
    monkeypatch.setattr("bench.load_rate.TIMEOUT_S", 0.05)
    generator = _generator()

    async def no_answer() -> int:
        await asyncio.sleep(1)
        return 200

    generator.calendar = no_answer  # type: ignore[method-assign]
    asyncio.run(generator.run({"calendar": 10.0}, 0.2))

    samples = generator.samples["calendar"]
    assert samples.statuses == {"timeout": 2}
    assert all(latency >= 50 for latency in samples.latencies_ms)
