"""The e-mail that asks the patient to confirm an online booking (security issue #15)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notifications', '0004_please_call_notice'),
    ]

    operations = [
        migrations.AlterField(
            model_name='outboundmessage',
            name='kind',
            field=models.CharField(choices=[('confirmation', 'Booking confirmation'), ('rescheduled', 'Moved'), ('cancelled', 'Cancelled'), ('prep', 'Preparation and escort (~48 h before)'), ('evening_before', 'Evening before (fasting)'), ('confirm_request', 'Reply C to confirm (~24 h before)'), ('morning_of', 'Morning of the visit'), ('follow_up', 'Follow-up after the visit'), ('please_call', 'Please call us (visits on hold)'), ('verify', 'Confirm your booking (online, e-mail link)')], max_length=24),
        ),
        migrations.AlterField(
            model_name='reminderrule',
            name='kind',
            field=models.CharField(choices=[('confirmation', 'Booking confirmation'), ('rescheduled', 'Moved'), ('cancelled', 'Cancelled'), ('prep', 'Preparation and escort (~48 h before)'), ('evening_before', 'Evening before (fasting)'), ('confirm_request', 'Reply C to confirm (~24 h before)'), ('morning_of', 'Morning of the visit'), ('follow_up', 'Follow-up after the visit'), ('please_call', 'Please call us (visits on hold)'), ('verify', 'Confirm your booking (online, e-mail link)')], max_length=24),
        ),
    ]
