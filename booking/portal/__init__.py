"""The patient's pages: booking a consultation (``book``), the secure link (``link``), a series
from the link (``series``) and waitlist offers (``waitlist``), on the services below them.
"""
