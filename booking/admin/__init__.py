"""Django admin registrations for booking: Django imports this package, which registers every
module's models."""

from django.contrib import admin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from booking.admin import appointments, plans

# django-otp's own admin shows every authenticator's secret and QR code to whoever opens it: a
# person manages their own at /staff/two-factor/, and an operator resets a lost one with
# `manage.py two_factor_reset` (booking.access.two_factor).
for _device in (TOTPDevice, StaticDevice):
    if admin.site.is_registered(_device):
        admin.site.unregister(_device)

__all__ = ["appointments", "plans"]
