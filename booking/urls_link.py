"""The patient's secure-link pages, /a/<token>/."""

from django.urls import URLPattern, path

from booking import link_pages, series_pages

urlpatterns: list[URLPattern] = [
    path("", link_pages.link_request, name="patient-link-request"),
    # Tokens are 43 characters long, so this short path can never shadow one.
    path("sent/", link_pages.link_requested, name="patient-link-requested"),
    path("<str:token>/", link_pages.visits, name="patient-link"),
    path("<str:token>/series/", series_pages.series_page, name="patient-link-series"),
    path(
        "<str:token>/series/book/",
        series_pages.series_book_view,
        name="patient-link-series-book",
    ),
    path(
        "<str:token>/<str:reference>/confirm/",
        link_pages.visit_confirm,
        name="patient-link-confirm",
    ),
    path(
        "<str:token>/<str:reference>/escort/", link_pages.visit_escort, name="patient-link-escort"
    ),
    path(
        "<str:token>/<str:reference>/reschedule/",
        link_pages.visit_reschedule,
        name="patient-link-reschedule",
    ),
    path(
        "<str:token>/<str:reference>/cancel/", link_pages.visit_cancel, name="patient-link-cancel"
    ),
    path(
        "<str:token>/<str:reference>/calendar.ics",
        link_pages.visit_calendar,
        name="patient-link-ics",
    ),
]
