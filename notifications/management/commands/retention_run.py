from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from notifications.retention import retention_run


class Command(BaseCommand):
    help = (
        "Remove the rows past their retention period, in bounded batches, and archive the audit "
        "log's months past the legal period (what the daily task does). Prints counts per kind."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; change nothing."
        )

    def handle(self, *args: object, **options: object) -> None:
        dry_run = bool(options["dry_run"])
        counts = retention_run(dry_run=dry_run)
        if dry_run:
            self.stdout.write("Dry run: these would go; nothing was changed.")
        for kind, count in counts.items():
            self.stdout.write(f"{kind}: {count}")
