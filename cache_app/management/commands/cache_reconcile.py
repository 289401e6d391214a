from django.core.management.base import BaseCommand

from cache_app.services.maintenance import cache_reconcile


class Command(BaseCommand):
    help = (
        "Sweep temporaries of dead processes and unused lock files, and make the database agree with this node's "
        "cache folder. Never deletes what the cache did not create."
    )

    def handle(self, *args, **options):
        result = cache_reconcile()
        if result.refused:
            # Not an error exit: the server starts all the same and answers 503 with this reason.
            self.stderr.write(f"cache folder left untouched: {result.refused}")
            return
        self.stdout.write(
            f"reconciled: {result.temporaries_removed} temporaries and {result.lock_files_removed} lock files "
            f"removed, {result.rows_marked_evicted} rows marked evicted, {result.folders_adopted} folders "
            f"adopted, {result.folders_removed} folders removed, {result.folders_quarantined} quarantined, "
            f"{result.folders_not_ours} not the cache's (left alone)"
        )
