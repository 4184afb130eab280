from django.urls import include, path

from booking import api, calendar_pages, staff_api

urlpatterns = [
    path("locations/", api.LocationList.as_view(), name="api-locations"),
    path("appointment-types/", api.AppointmentTypeList.as_view(), name="api-appointment-types"),
    path("availability/", api.Availability.as_view(), name="api-availability"),
    path("bookings/", api.BookingCreate.as_view(), name="api-bookings"),
    path("calendar/", calendar_pages.CalendarData.as_view(), name="api-calendar"),
    path("appointments/", staff_api.AppointmentList.as_view(), name="api-appointments"),
    path("patients/", staff_api.PatientSearch.as_view(), name="api-patients"),
    path(
        "appointments/<str:reference>/",
        staff_api.AppointmentDetail.as_view(),
        name="api-appointment",
    ),
    *(
        path(
            f"appointments/<str:reference>/{step}/", view.as_view(), name=f"api-appointment-{step}"
        )
        for step, view in [
            ("reschedule", staff_api.AppointmentReschedule),
            ("cancel", staff_api.AppointmentCancel),
            ("checklist", staff_api.AppointmentChecklist),
            ("check-in", staff_api.AppointmentCheckIn),
            ("in-chair", staff_api.AppointmentInChair),
            ("recovering", staff_api.AppointmentRecovering),
            ("escort-present", staff_api.AppointmentEscortPresent),
            ("discharge", staff_api.AppointmentDischarge),
            ("no-show", staff_api.AppointmentNoShow),
        ]
    ),
    path("", include("booking.urls_plans")),
    path("", include("booking.urls_series")),
]
