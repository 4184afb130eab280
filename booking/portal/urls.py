"""The patient's pages: booking at /book/ (and its e-mailed confirmation), the secure link at
/a/, waitlist offers at /w/."""

from django.urls import URLPattern, URLResolver, include, path

from booking.portal import book, confirm, link, series, waitlist

book_patterns = [
    path("", book.book_start, name="book-start"),
    # Before the location slugs, which it would otherwise read as one.
    path("done/", book.book_done, name="book-done"),
    # The e-mailed link that confirms a tentative booking; tokens are 43 characters long.
    path("confirm/<str:token>/", confirm.confirm_page, name="book-verify"),
    path("confirm/<str:token>/confirm/", confirm.confirm_view, name="book-verify-confirm"),
    path("confirm/<str:token>/release/", confirm.release_view, name="book-verify-release"),
    path("<slug:location_slug>/", book.book_types, name="book-types"),
    path("<slug:location_slug>/<slug:type_slug>/", book.book_slots, name="book-slots"),
    path("<slug:location_slug>/<slug:type_slug>/details/", book.book_details, name="book-details"),
    path("<slug:location_slug>/<slug:type_slug>/times/", book.book_times, name="book-times"),
    path("<slug:location_slug>/<slug:type_slug>/review/", book.book_review, name="book-review"),
    path("<slug:location_slug>/<slug:type_slug>/confirm/", book.book_confirm, name="book-confirm"),
]

link_patterns = [
    path("", link.link_request, name="patient-link-request"),
    # Tokens are 43 characters long, so this short path can never shadow one.
    path("sent/", link.link_requested, name="patient-link-requested"),
    path("<str:token>/", link.visits, name="patient-link"),
    path("<str:token>/series/", series.series_page, name="patient-link-series"),
    path("<str:token>/series/book/", series.series_book_view, name="patient-link-series-book"),
    path("<str:token>/<str:reference>/confirm/", link.visit_confirm, name="patient-link-confirm"),
    path("<str:token>/<str:reference>/escort/", link.visit_escort, name="patient-link-escort"),
    path(
        "<str:token>/<str:reference>/reschedule/",
        link.visit_reschedule,
        name="patient-link-reschedule",
    ),
    path("<str:token>/<str:reference>/cancel/", link.visit_cancel, name="patient-link-cancel"),
    path("<str:token>/<str:reference>/calendar.ics", link.visit_calendar, name="patient-link-ics"),
]

waitlist_patterns = [
    path("<str:token>/", waitlist.offer, name="waitlist-offer"),
    path("<str:token>/accept/", waitlist.offer_accept_view, name="waitlist-offer-accept"),
    path("<str:token>/decline/", waitlist.offer_decline_view, name="waitlist-offer-decline"),
]

urlpatterns: list[URLPattern | URLResolver] = [
    path("book/", include(book_patterns)),
    path("a/", include(link_patterns)),
    path("w/", include(waitlist_patterns)),
]
