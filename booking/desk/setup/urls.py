"""/staff/setup/: the clinic's setup pages (booking.desk.setup)."""

from django.urls import path

from booking.desk.setup import (
    accounts,
    home,
    intake,
    locations,
    new_location,
    people,
    protocols,
    types,
)

urlpatterns = [
    path("", home.setup_home, name="setup-home"),
    path("first-run/", new_location.first_run, name="setup-first-run"),
    path("locations/new/", new_location.location_new, name="setup-location-new"),
    path("contraindications/", intake.contraindications, name="setup-contraindications"),
    path(
        "contraindications/<int:contraindication_id>/",
        intake.contraindication,
        name="setup-contraindication",
    ),
    path("<int:location_id>/intake/", intake.intake, name="setup-intake"),
    path(
        "<int:location_id>/intake/<int:option_id>/",
        intake.intake_option,
        name="setup-intake-option",
    ),
    path("<int:location_id>/", locations.location_edit, name="setup-location"),
    path("<int:location_id>/feed/", locations.location_feed, name="setup-location-feed"),
    path(
        "<int:location_id>/feed/revoke/",
        locations.location_feed_revoke,
        name="setup-location-feed-revoke",
    ),
    path("<int:location_id>/closures/", locations.closures, name="setup-closures"),
    path(
        "<int:location_id>/closures/<int:closure_id>/remove/",
        locations.closure_drop,
        name="setup-closure-remove",
    ),
    path("<int:location_id>/people/", people.people_list, name="setup-people"),
    path("<int:location_id>/people/<int:resource_id>/", people.person, name="setup-person"),
    path(
        "<int:location_id>/people/<int:resource_id>/feed/",
        people.person_feed,
        name="setup-person-feed",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/feed/revoke/",
        people.person_feed_revoke,
        name="setup-person-feed-revoke",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/hours/",
        people.person_hours,
        name="setup-person-hours",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/hours-from/",
        people.person_hours_from,
        name="setup-person-hours-from",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/hours-from/<str:day>/remove/",
        people.person_change_drop,
        name="setup-person-change-remove",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/overrides/",
        people.person_override,
        name="setup-person-override",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/overrides/<str:day>/remove/",
        people.person_override_drop,
        name="setup-person-override-remove",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/time-off/",
        people.person_time_off,
        name="setup-person-time-off",
    ),
    path(
        "<int:location_id>/people/<int:resource_id>/time-off/<int:time_off_id>/remove/",
        people.person_time_off_drop,
        name="setup-person-time-off-remove",
    ),
    path("<int:location_id>/accounts/", accounts.accounts_list, name="setup-accounts"),
    path(
        "<int:location_id>/accounts/invite/", accounts.account_invite, name="setup-account-invite"
    ),
    path(
        "<int:location_id>/accounts/<int:account_id>/",
        accounts.account_edit,
        name="setup-account",
    ),
    path(
        "<int:location_id>/accounts/<int:account_id>/active/",
        accounts.account_active,
        name="setup-account-active",
    ),
    path(
        "<int:location_id>/accounts/<int:account_id>/resend/",
        accounts.account_resend,
        name="setup-account-resend",
    ),
    path("<int:location_id>/types/", types.types_list, name="setup-types"),
    path("<int:location_id>/types/new/", types.type_new, name="setup-type-new"),
    path("<int:location_id>/types/<int:type_id>/", types.type_edit, name="setup-type"),
    path("<int:location_id>/types/<int:type_id>/needs/", types.type_needs, name="setup-type-needs"),
    path("<int:location_id>/protocols/", protocols.protocols_list, name="setup-protocols"),
    path(
        "<int:location_id>/protocols/<int:protocol_id>/",
        protocols.protocol_edit,
        name="setup-protocol",
    ),
]
