"""Django admin registrations for booking: Django imports this package, which registers every
module's models."""

from booking.admin import appointments, plans

__all__ = ["appointments", "plans"]
