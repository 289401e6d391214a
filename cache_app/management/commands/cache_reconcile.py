from django.core.management.base import BaseCommand

from cache_app.services.maintenance import cache_reconcile


class Command(BaseCommand):
    help = "Sweep half-written temporaries and make the database agree with this node's cache folder."

    def handle(self, *args, **options):
        result = cache_reconcile()
        self.stdout.write(
            f"reconciled: {result.temporaries_removed} temporaries removed, {result.rows_marked_evicted} rows "
            f"marked evicted, {result.folders_adopted} folders adopted, {result.folders_removed} folders removed"
        )
