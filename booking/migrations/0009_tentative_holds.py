"""Online bookings held until the patient confirms their e-mail (security issue #15): the
TENTATIVE status, the hold (expiry, hashed link token, client digest) and provisional patients,
which are nobody's record until confirmed."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('booking', '0008_audit_truncate_guard'),
    ]

    operations = [
        migrations.AddField(
            model_name='patient',
            name='provisional',
            field=models.BooleanField(default=False),
        ),
        migrations.AlterField(
            model_name='appointment',
            name='status',
            field=models.CharField(choices=[('booked', 'Booked'), ('confirmed', 'Confirmed'), ('checked_in', 'Arrived'), ('in_chair', 'In chair'), ('recovering', 'Recovering'), ('discharged', 'Discharged'), ('no_show', 'No-show'), ('cancelled', 'Cancelled'), ('on_hold', 'On hold'), ('held', 'Held for a waitlist offer'), ('tentative', "Awaiting the patient's e-mail")], default='booked', max_length=16),
        ),
        migrations.CreateModel(
            name='TentativeHold',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('token_hash', models.CharField(max_length=64, unique=True)),
                ('expires_at', models.DateTimeField()),
                ('client', models.CharField(blank=True, max_length=64)),
                ('created_at', models.DateTimeField()),
                ('confirmed_at', models.DateTimeField(blank=True, null=True)),
                ('appointment', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='tentative_hold', to='booking.appointment')),
            ],
            options={
                'indexes': [models.Index(condition=models.Q(('confirmed_at__isnull', True)), fields=['expires_at'], name='tentative_hold_open'), models.Index(fields=['client', 'expires_at'], name='tentative_hold_client')],
            },
        ),
    ]
