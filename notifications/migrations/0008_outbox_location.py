"""The outbox row carries its visit's location, so that the desk reads one location's messages
through an index of its own: rows already there take their visit's."""

import django.db.models.deletion
from django.db import migrations, models

_BACKFILL = """
UPDATE notifications_outboundmessage
SET location_id = (
    SELECT a.location_id FROM booking_appointment a
    WHERE a.id = notifications_outboundmessage.appointment_id
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0013_patient_search_trigram"),
        ("notifications", "0007_webhooks"),
        ("scheduling", "0007_type_colour_neutral_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboundmessage",
            name="location",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="scheduling.location",
            ),
        ),
        migrations.RunSQL(_BACKFILL, migrations.RunSQL.noop, elidable=True),
        migrations.AlterField(
            model_name="outboundmessage",
            name="location",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="scheduling.location",
            ),
        ),
        migrations.AddIndex(
            model_name="outboundmessage",
            index=models.Index(fields=["location", "id"], name="outbound_location_log"),
        ),
        migrations.AddIndex(
            model_name="outboundmessage",
            index=models.Index(
                condition=models.Q(("status", "failed")),
                fields=["location", "updated_at"],
                name="outbound_location_failed",
            ),
        ),
    ]
