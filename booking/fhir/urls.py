"""The FHIR API under /fhir/ (``booking.fhir``)."""

from django.urls import path, re_path

from booking.fhir import views

urlpatterns = [
    path("metadata", views.Metadata.as_view(), name="fhir-metadata"),
    path("Location", views.LocationSearch.as_view(), name="fhir-location-search"),
    path("Location/<str:pk>", views.LocationRead.as_view(), name="fhir-location"),
    path(
        "HealthcareService",
        views.HealthcareServiceSearch.as_view(),
        name="fhir-healthcareservice-search",
    ),
    path(
        "HealthcareService/<str:pk>",
        views.HealthcareServiceRead.as_view(),
        name="fhir-healthcareservice",
    ),
    path("Schedule", views.ScheduleSearch.as_view(), name="fhir-schedule-search"),
    path("Schedule/<str:pk>", views.ScheduleRead.as_view(), name="fhir-schedule"),
    path("Appointment", views.AppointmentSearch.as_view(), name="fhir-appointment-search"),
    # The operations before the read: "$find" is no appointment's id.
    path("Appointment/$find", views.AppointmentFind.as_view(), name="fhir-appointment-find"),
    path("Appointment/$hold", views.AppointmentHold.as_view(), name="fhir-appointment-hold"),
    path("Appointment/$book", views.AppointmentBook.as_view(), name="fhir-appointment-book"),
    path("Appointment/<str:reference>", views.AppointmentRead.as_view(), name="fhir-appointment"),
    path("Patient/<str:pk>", views.PatientRead.as_view(), name="fhir-patient"),
    re_path(r"", views.NotFound.as_view(), name="fhir-not-found"),
]
