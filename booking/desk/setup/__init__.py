"""The clinic's own setup pages under /staff/setup/, for the Admin role at its locations.

Every page is one location's (``/staff/setup/<location>/…``): a location the admin does not work
at answers 404, as if it did not exist. Every change is audited, and a change that would leave a
booked visit without its resources goes through :func:`booking.impact.setup_change`.
"""
