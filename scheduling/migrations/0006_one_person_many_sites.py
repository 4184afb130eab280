"""One person, one calendar across sites; hours per location, from a date, and date overrides;
only a consultation may be booked without a prescriber's approval."""

import django.db.models.deletion
from django.db import migrations, models


def hours_at_home(apps, schema_editor):
    """Every existing shift is at its resource's own location."""
    WorkingHours = apps.get_model("scheduling", "WorkingHours")
    Resource = apps.get_model("scheduling", "Resource")
    for resource_id, location_id in Resource.objects.values_list("id", "location_id"):
        WorkingHours.objects.filter(resource_id=resource_id).update(location_id=location_id)


def treatment_needs_approval(apps, schema_editor):
    AppointmentType = apps.get_model("scheduling", "AppointmentType")
    AppointmentType.objects.exclude(kind="consultation").update(needs_approval=True)


class Migration(migrations.Migration):

    dependencies = [
        ('scheduling', '0005_online_bookings'),
    ]

    operations = [
        migrations.CreateModel(
            name='DateOverride',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('date', models.DateField()),
                ('start', models.TimeField(blank=True, null=True)),
                ('end', models.TimeField(blank=True, null=True)),
                ('reason', models.CharField(blank=True, max_length=200)),
            ],
            options={
                'ordering': ['date', 'start'],
            },
        ),
        migrations.AlterModelOptions(
            name='workinghours',
            options={'ordering': ['resource', 'location', 'weekday', 'start'], 'verbose_name_plural': 'working hours'},
        ),
        migrations.AddField(
            model_name='location',
            name='two_factor_for_all_staff',
            field=models.BooleanField(default=False, help_text='Every staff account working here signs in with a second factor. Admins and prescribers always do.'),
        ),
        migrations.AddField(
            model_name='resource',
            name='sites',
            field=models.ManyToManyField(blank=True, help_text='Other locations this person also works at, with hours of their own there.', related_name='visiting_resources', to='scheduling.location'),
        ),
        migrations.AddField(
            model_name='workinghours',
            name='location',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='scheduling.location'),
        ),
        migrations.RunPython(hours_at_home, migrations.RunPython.noop),
        migrations.AlterField(
            model_name='workinghours',
            name='location',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='scheduling.location'),
        ),
        migrations.AddField(
            model_name='workinghours',
            name='valid_from',
            field=models.DateField(blank=True, help_text='Empty: since always.', null=True),
        ),
        migrations.AddField(
            model_name='workinghours',
            name='valid_until',
            field=models.DateField(blank=True, help_text='The first day it no longer applies; empty: for good.', null=True),
        ),
        migrations.AddIndex(
            model_name='workinghours',
            index=models.Index(fields=['resource', 'location'], name='scheduling__resourc_eb5cad_idx'),
        ),
        migrations.RunPython(treatment_needs_approval, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name='appointmenttype',
            constraint=models.CheckConstraint(condition=models.Q(('kind', 'consultation'), ('needs_approval', True), _connector='OR'), name='appointment_type_treatment_approved'),
        ),
        migrations.AddConstraint(
            model_name='workinghours',
            constraint=models.CheckConstraint(condition=models.Q(('valid_from__isnull', True), ('valid_until__isnull', True), ('valid_from__lt', models.F('valid_until')), _connector='OR'), name='working_hours_validity'),
        ),
        migrations.AddField(
            model_name='dateoverride',
            name='location',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='scheduling.location'),
        ),
        migrations.AddField(
            model_name='dateoverride',
            name='resource',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='date_overrides', to='scheduling.resource'),
        ),
        migrations.AddIndex(
            model_name='dateoverride',
            index=models.Index(fields=['resource', 'location', 'date'], name='scheduling__resourc_075851_idx'),
        ),
        migrations.AddConstraint(
            model_name='dateoverride',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('end__isnull', True), ('start__isnull', True)), ('start__lt', models.F('end')), _connector='OR'), name='date_override_order'),
        ),
    ]
