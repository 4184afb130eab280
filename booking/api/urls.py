"""The API under /api/v1/: the public endpoints, then the staff ones."""

from django.urls import path

from booking.api import appointments, calendar, feeds, plans, public, series

urlpatterns = [
    path("locations/", public.LocationList.as_view(), name="api-locations"),
    path("appointment-types/", public.AppointmentTypeList.as_view(), name="api-appointment-types"),
    path("availability/", public.Availability.as_view(), name="api-availability"),
    path("bookings/", public.BookingCreate.as_view(), name="api-bookings"),
    path("pow/challenge/", public.ProofOfWorkChallenge.as_view(), name="api-pow-challenge"),
    path("calendar/", calendar.CalendarData.as_view(), name="api-calendar"),
    path("feeds/<str:token>.ics", feeds.calendar_feed, name="api-calendar-feed"),
    path("appointments/", appointments.AppointmentList.as_view(), name="api-appointments"),
    path("patients/", appointments.PatientSearch.as_view(), name="api-patients"),
    path(
        "appointments/<str:reference>/",
        appointments.AppointmentDetail.as_view(),
        name="api-appointment",
    ),
    *(
        path(
            f"appointments/<str:reference>/{step}/", view.as_view(), name=f"api-appointment-{step}"
        )
        for step, view in [
            ("reschedule", appointments.AppointmentReschedule),
            ("cancel", appointments.AppointmentCancel),
            ("checklist", appointments.AppointmentChecklist),
            ("check-in", appointments.AppointmentCheckIn),
            ("in-chair", appointments.AppointmentInChair),
            ("recovering", appointments.AppointmentRecovering),
            ("escort-present", appointments.AppointmentEscortPresent),
            ("discharge", appointments.AppointmentDischarge),
            ("no-show", appointments.AppointmentNoShow),
        ]
    ),
    path("plans/", plans.PlanList.as_view(), name="api-plans"),
    path("plans/decisions/", plans.DecisionCreate.as_view(), name="api-plan-decisions"),
    path("plans/<int:pk>/revoke/", plans.PlanRevoke.as_view(), name="api-plan-revoke"),
    path("series/", series.SeriesCreate.as_view(), name="api-series"),
    path("series/proposals/", series.ProposalCreate.as_view(), name="api-series-proposals"),
    path("series/<int:pk>/", series.SeriesDetail.as_view(), name="api-series-detail"),
    path("series/<int:pk>/hold/", series.SeriesHold.as_view(), name="api-series-hold"),
    path("series/<int:pk>/resume/", series.SeriesResume.as_view(), name="api-series-resume"),
    path(
        "series/<int:pk>/cancel-rest/",
        series.SeriesCancelRest.as_view(),
        name="api-series-cancel-rest",
    ),
    path("series/<int:pk>/review/", series.SeriesReview.as_view(), name="api-series-review"),
    path(
        "series/sessions/<str:reference>/reschedule/",
        series.SessionReschedule.as_view(),
        name="api-series-session-reschedule",
    ),
]
