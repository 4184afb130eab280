"""Patient search served by an index, PostgreSQL only (performance issue #19, bench.growth).

``booking.access.scoping.patients_search`` matches part of a name or an e-mail address
(``icontains``: ``UPPER(col::text) LIKE UPPER('%word%')``) and part of a phone number
(``contains``: ``phone::text LIKE '%1234%'``). No B-tree serves a pattern with a leading
wildcard, so every search read the whole patient table: 252 ms at 200,000 patients and 643 ms at
a million in ``bench.growth``. A trigram GIN index over the very expressions the lookups write
serves all four (pg_trgm is a trusted extension: the database's owner may create it). On SQLite
nothing changes.
"""

from django.db import migrations

CREATE = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX booking_patient_search_trgm ON booking_patient USING gin (
    (UPPER(first_name::text)) gin_trgm_ops,
    (UPPER(last_name::text)) gin_trgm_ops,
    (UPPER(email::text)) gin_trgm_ops,
    (phone::text) gin_trgm_ops
);
"""

# The extension stays: other objects may have come to use it.
DROP = "DROP INDEX IF EXISTS booking_patient_search_trgm;"


def _on_postgres(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("booking", "0012_audit_partitions")]

    operations = [migrations.RunPython(_on_postgres(CREATE), _on_postgres(DROP))]
