from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from booking.signals import waitlist_offer_made
        from notifications import (
            receivers,  # noqa: F401  (connects the signal receivers)
            webhooks_outbox,  # noqa: F401  (and the webhooks' receivers)
        )
        from notifications.waitlist import offer_announce

        waitlist_offer_made.connect(offer_announce, dispatch_uid="notifications.waitlist_offer")
