"""The outbox row records a hand-over to the provider before the call, so that a worker killed
mid-send leaves a trace: the message is then recorded as unconfirmed, never sent a second time.
Two nullable columns: no rewrite and no scan of the table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0008_outbox_location"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="handed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="outboundmessage",
            name="handed_version",
            field=models.IntegerField(blank=True, null=True),
        ),
    ]
