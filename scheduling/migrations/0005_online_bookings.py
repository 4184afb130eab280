"""Online bookings held until the patient confirms their e-mail (security issue #15): the
location's settings for it (on for every location, existing ones included), the countries whose
mobiles it texts, and neutral public slugs for the default treatment types, which the public API
and the booking page use instead of slugs that name the treatment."""

import django.core.validators
from django.db import migrations, models
from django.db.models import Q

import scheduling.models

# The default types' slugs as they stood when this migration was written (scheduling.defaults).
NEUTRAL_SLUGS = {
    "iv-mood": "treatment-session",
    "iv-pain": "extended-session",
    "spravato": "observed-session",
    "booster": "follow-up-session",
}


def neutral_public_slugs(apps, schema_editor):
    AppointmentType = apps.get_model("scheduling", "AppointmentType")
    for visit_type in AppointmentType.objects.filter(slug__in=NEUTRAL_SLUGS, public_slug=""):
        public = NEUTRAL_SLUGS[visit_type.slug]
        taken = AppointmentType.objects.filter(location_id=visit_type.location_id).filter(
            Q(public_slug=public) | Q(public_slug="", slug=public)
        )
        if not taken.exists():
            visit_type.public_slug = public
            visit_type.save(update_fields=["public_slug"])


class Migration(migrations.Migration):

    dependencies = [
        ('scheduling', '0004_appointment_type_safe_defaults'),
    ]

    operations = [
        migrations.AddField(
            model_name='appointmenttype',
            name='public_slug',
            field=models.SlugField(blank=True, help_text="The type's name in patients' addresses and the public API, neutral like the public name; empty: the slug."),
        ),
        migrations.AddField(
            model_name='location',
            name='sms_regions',
            field=models.CharField(blank=True, help_text="Countries whose mobile numbers may be given online and receive texts, as region codes separated by commas (e.g. US,CA). Empty: the clinic's own country.", max_length=200, validators=[scheduling.models.validate_regions]),
        ),
        migrations.AddField(
            model_name='location',
            name='tentative_day_percent',
            field=models.PositiveSmallIntegerField(default=25, help_text="The most of a day's visits unconfirmed online bookings may hold at once, in per cent (always at least one).", validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(100)]),
        ),
        migrations.AddField(
            model_name='location',
            name='tentative_hold_minutes',
            field=models.PositiveSmallIntegerField(default=15, help_text='How long an unconfirmed online booking holds its time.', validators=[django.core.validators.MinValueValidator(5), django.core.validators.MaxValueValidator(120)]),
        ),
        migrations.AddField(
            model_name='location',
            name='verify_online_bookings',
            field=models.BooleanField(default=True, help_text='An online booking only holds its time until the patient follows the link e-mailed to them; unconfirmed, it lapses. Off: online bookings are booked at once.'),
        ),
        migrations.AddConstraint(
            model_name='appointmenttype',
            constraint=models.UniqueConstraint(condition=models.Q(('public_slug', ''), _negated=True), fields=('location', 'public_slug'), name='appointment_type_public_slug'),
        ),
        migrations.AddConstraint(
            model_name='location',
            constraint=models.CheckConstraint(condition=models.Q(('tentative_hold_minutes__gte', 5), ('tentative_hold_minutes__lte', 120)), name='location_tentative_hold_range'),
        ),
        migrations.AddConstraint(
            model_name='location',
            constraint=models.CheckConstraint(condition=models.Q(('tentative_day_percent__gte', 1), ('tentative_day_percent__lte', 100)), name='location_tentative_percent_range'),
        ),
        migrations.RunPython(neutral_public_slugs, migrations.RunPython.noop),
    ]
