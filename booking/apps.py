from django.apps import AppConfig
from django.contrib.auth.signals import user_logged_in
from django.db.models.signals import post_migrate


class BookingConfig(AppConfig):
    name = "booking"
    verbose_name = "Booking"

    def ready(self) -> None:
        from booking.access.roles import sync_roles
        from booking.access.two_factor import remember_need
        from booking.history import record_change
        from booking.signals import appointment_changed
        from booking.waitlist import on_appointment_changed as offer_freed_slots

        # After every app's permissions exist (they too are made on post_migrate).
        post_migrate.connect(sync_roles, dispatch_uid="booking.sync_roles")
        appointment_changed.connect(record_change, dispatch_uid="booking.history")
        appointment_changed.connect(offer_freed_slots, dispatch_uid="booking.waitlist")
        # A sign-in works out once whether the session must pass a second factor.
        user_logged_in.connect(remember_need, dispatch_uid="booking.two_factor")
