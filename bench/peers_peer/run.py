"""django-appointment's side of bench.peers, run by the peer's own interpreter.

``run.py REQUEST ANSWER``: REQUEST is the clinic as JSON (written by ``bench.peers``), ANSWER
where this writes its free starts, timings and the overlap attempt. Nothing of Chairside is
imported here: only Django, django-appointment and the standard library. The database (named
by ``PEER_DATABASE_URL``) is empty when this starts.
"""

import datetime
import gc
import json
import os
import sys
import time
from importlib.metadata import version


def setup():
    sys.path.insert(0, os.getcwd())
    os.environ["DJANGO_SETTINGS_MODULE"] = "peer_settings"
    import django
    from django.core.management import call_command

    django.setup()
    # The package ships no migrations (its documentation has each project make its own): they
    # are made in the scratch directory this runs in (peer_settings.MIGRATION_MODULES).
    os.makedirs("peer_migrations", exist_ok=True)
    open(os.path.join("peer_migrations", "__init__.py"), "w").close()
    call_command("makemigrations", "appointment", verbosity=0)
    call_command("migrate", verbosity=0, interactive=False)


def load(clinic):
    """The clinic in the peer's tables, the way its admin pages would leave it."""
    from appointment.models import (  # type: ignore[import-not-found]
        Appointment,
        AppointmentRequest,
        Config,
        Service,
        StaffMember,
        WorkingHours,
    )
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    grid = clinic["grid"]
    Config.objects.create(
        slot_duration=grid,
        appointment_buffer_time=0,
        default_to_service_duration=True,
        slot_gap_time=0,
    )
    services = {
        slug: Service.objects.create(
            name=slug, duration=datetime.timedelta(minutes=minutes), price=0
        )
        for slug, minutes in clinic["services"].items()
    }
    users = user_model.objects.bulk_create(
        user_model(username=f"staff{n}", email=f"staff{n}@example.org", first_name=name)
        for n, name in enumerate(clinic["staff"])
    )
    staff = StaffMember.objects.bulk_create(
        StaffMember(user=user, slot_duration=grid, work_on_saturday="5" in clinic["hours"])
        for user in users
    )
    for member in staff:
        member.services_offered.set(services.values())
    # The peer numbers weekdays from Sunday (0) to Saturday (6).
    WorkingHours.objects.bulk_create(
        WorkingHours(
            staff_member=member,
            day_of_week=(int(weekday) + 1) % 7,
            start_time=datetime.time(opens // 60, opens % 60),
            end_time=datetime.time(closes // 60, closes % 60),
        )
        for member in staff
        for weekday, (opens, closes) in clinic["hours"].items()
    )
    requests = AppointmentRequest.objects.bulk_create(
        AppointmentRequest(
            date=datetime.date.fromisoformat(day),
            start_time=clock(minute),
            end_time=clock(minute + clinic["services"][slug]),
            service=services[slug],
            staff_member=staff[person],
            id_request=f"bench{n}",
        )
        for n, (person, day, minute, slug) in enumerate(clinic["visits"])
    )
    client = user_model.objects.create_user(
        username="client", email="client@example.org", first_name="Client"
    )
    Appointment.objects.bulk_create(
        Appointment(
            client=client,
            appointment_request=request,
            phone="+12125550000",
            amount_to_pay=0,
            id_request=f"bench{n}",
        )
        for n, request in enumerate(requests)
    )
    return staff, services, client


def clock(minute):
    return datetime.time(minute // 60, minute % 60)


def slot_calls(clinic, staff, service):
    """One call per staff member and day, as the booking page's slot request makes it."""
    from appointment.services import get_available_slots_for_staff  # type: ignore[import-not-found]
    from appointment.utils.db_helpers import get_weekday_num_from_date  # type: ignore[import-not-found]

    def call(member, day):
        return get_available_slots_for_staff(
            day, member, get_weekday_num_from_date(day), service=service
        )

    return [
        (n, day, lambda member=member, day=day: call(member, day))
        for day in map(datetime.date.fromisoformat, clinic["days"])
        for n, member in enumerate(staff)
    ]


def overlap(clinic, target, staff, services, client_user):
    """Book the target visit's staff member again at its time through the peer's own pages: the
    slot form posts the request, then the signed-in client's information form makes the visit."""
    from appointment.models import Appointment
    from django.test import Client
    from django.urls import reverse

    person, day, minute, slug = target
    client = Client()
    client.force_login(client_user)
    before = Appointment.objects.count()
    response = client.post(
        reverse("appointment:appointment_request_submit"),
        {
            "date": day,
            "start_time": clock(minute).strftime("%H:%M"),
            "end_time": clock(minute + clinic["services"][slug]).strftime("%H:%M"),
            "service": services[slug].pk,
            "staff_member": staff[person].pk,
        },
    )
    if response.status_code != 302:
        return False, f"request form refused it ({response.status_code})"
    response = client.post(
        response["Location"],
        {
            "name": "Client",
            "email": client_user.email,
            "phone_0": "US",
            "phone_1": "2125550123",
            "address": "",
            "additional_info": "",
            "payment_type": "full",
        },
    )
    if Appointment.objects.count() != before + 1:
        return False, f"client form refused it ({response.status_code})"
    start, end = clock(minute), clock(minute + clinic["services"][slug])
    clashing = Appointment.objects.filter(
        appointment_request__staff_member=staff[person],
        appointment_request__date=day,
        appointment_request__start_time__lt=end,
        appointment_request__end_time__gt=start,
    ).count()
    return clashing > 1, (
        f"saved it: {clashing} visits of {clinic['staff'][person]} now overlap at {day} "
        f"{start:%H:%M}-{end:%H:%M}"
    )


def main():
    request_path, answer_path = sys.argv[1], sys.argv[2]
    with open(request_path, encoding="utf-8") as f:
        request = json.load(f)
    clinic = request["clinic"]
    setup()
    from django.db import connection

    staff, services, client_user = load(clinic)
    calls = slot_calls(clinic, staff, services[clinic["asked"]])
    names = clinic["staff"]
    starts = [
        [names[n], slot.strftime("%Y-%m-%dT%H:%M")] for n, _, call in calls for slot in call()
    ]
    # One untimed pass warms the connection and the caches, as on the other side.
    for _, _, call in calls:
        call()
    rounds = []
    gc.collect()
    for _ in range(request["repetitions"]):
        samples = []
        for _, _, call in calls:
            started = time.perf_counter_ns()
            call()
            samples.append((time.perf_counter_ns() - started) / 1e9)
        rounds.append(samples)
    with connection.cursor() as cursor:
        sqlite = connection.vendor == "sqlite"
        cursor.execute("SELECT sqlite_version()" if sqlite else "SHOW server_version")
        server = cursor.fetchone()[0]
    allowed, said = overlap(clinic, request["target"], staff, services, client_user)
    answer = {
        "version": f"django-appointment {version('django-appointment')}",
        "django": version("Django"),
        "database": f"{connection.display_name} {server}",
        "starts": starts,
        "rounds": rounds,
        "overlap_allowed": allowed,
        "overlap_said": said,
    }
    with open(answer_path, "w", encoding="utf-8") as f:
        json.dump(answer, f)


if __name__ == "__main__":
    main()
