from django.db import migrations, models


def observe_existing_treatments(apps, schema_editor):
    """Treatment types already in use get the floors new ones start with: Spravato two hours
    from dosing (REMS), an infusion or booster 40 minutes of recovery after it ends."""
    AppointmentType = apps.get_model("scheduling", "AppointmentType")
    AppointmentType.objects.filter(kind="spravato").update(
        observation_minutes=120, observation_from="seated"
    )
    AppointmentType.objects.filter(kind__in=["infusion", "booster"]).update(
        observation_minutes=40, observation_from="recovering"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0002_location_hold_keeps_chairs"),
    ]

    operations = [
        migrations.AddField(
            model_name="appointmenttype",
            name="observation_from",
            field=models.CharField(
                choices=[
                    ("seated", "From dosing (the patient seated)"),
                    ("recovering", "From the end of the infusion (recovery)"),
                ],
                default="recovering",
                max_length=12,
            ),
        ),
        migrations.AddField(
            model_name="appointmenttype",
            name="observation_minutes",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="The least time a patient is observed before discharge; 0 for none.",
            ),
        ),
        migrations.RunPython(observe_existing_treatments, migrations.RunPython.noop),
    ]
