from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from booking.signals import visit_messages_requested, waitlist_offer_made
        from notifications import receivers  # noqa: F401  (connects the signal receivers)
        from notifications.visit_messages import answer_visit_messages
        from notifications.waitlist import offer_announce

        visit_messages_requested.connect(
            answer_visit_messages, dispatch_uid="notifications.visit_messages"
        )
        waitlist_offer_made.connect(offer_announce, dispatch_uid="notifications.waitlist_offer")
