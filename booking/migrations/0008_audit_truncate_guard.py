"""The audit log refuses TRUNCATE too (security issue #15): 0005's trigger covers UPDATE and
DELETE, but TRUNCATE fires no UPDATE or DELETE trigger, so an owner or a role with TRUNCATE
could still empty the table. PostgreSQL only; SQLite has no TRUNCATE."""

from django.db import migrations

TRUNCATE_GUARD = """
CREATE FUNCTION booking_audit_no_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: TRUNCATE refused';
END $$;
CREATE TRIGGER booking_audit_no_truncate BEFORE TRUNCATE
    ON booking_auditevent FOR EACH STATEMENT EXECUTE FUNCTION booking_audit_no_truncate();
"""
DROP_TRUNCATE_GUARD = """
DROP TRIGGER IF EXISTS booking_audit_no_truncate ON booking_auditevent;
DROP FUNCTION IF EXISTS booking_audit_no_truncate();
"""


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("booking", "0007_contraindications_as_data")]

    operations = [
        migrations.RunPython(_on_postgres(TRUNCATE_GUARD), _on_postgres(DROP_TRUNCATE_GUARD)),
    ]
