"""The staff pages: the day board and visit detail (``board``), the calendar page
(``calendar``), the waitlist (``waitlist``) and the audit log (``audit``), on the services below.
"""
