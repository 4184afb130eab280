from django.db import migrations, models


def gate_existing_treatments(apps, schema_editor):
    """Treatment types already in use get the safe defaults new ones start with: a prescriber's
    approval first, and adults only."""
    AppointmentType = apps.get_model("scheduling", "AppointmentType")
    AppointmentType.objects.exclude(kind="consultation").update(
        needs_approval=True, min_age_years=18
    )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0003_appointment_type_observation"),
    ]

    operations = [
        migrations.AddField(
            model_name="appointmenttype",
            name="min_age_years",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="The youngest a patient may be on the day of the visit; 0 for any age.",
            ),
        ),
        migrations.AlterField(
            model_name="appointmenttype",
            name="needs_approval",
            field=models.BooleanField(default=True),
        ),
        migrations.RunPython(gate_existing_treatments, migrations.RunPython.noop),
    ]
