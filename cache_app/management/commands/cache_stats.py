import json

from django.core.management.base import BaseCommand

from cache_app import selectors
from cache_app.services.stats import counters


class Command(BaseCommand):
    help = "Print this node's cache statistics (the API's cache_stats), as text or --json."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the statistics as JSON")

    def handle(self, *args, **options):
        counters().flush()
        stats = selectors.cache_stats()
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, default=str))
            return
        tiers = stats["tiers"]
        self.stdout.write(f"Cache contains {stats['total_models']} models using {stats['total_size_mb']} MB")
        self.stdout.write(f"node {stats['node']}, cache folder {stats['cache_dir']}")
        self.stdout.write(f"{'tier':8} {'models':>7} {'size MB':>10} {'hits':>8} {'misses':>8} {'hit rate':>9}")
        for name in ("memory", "disk", "shared", "origin"):
            tier = tiers[name]
            rate = "-" if tier.get("hit_rate") is None else f"{tier['hit_rate']:.1%}"
            models = tier.get("models", "-")
            size = tier.get("size_mb", "-")
            self.stdout.write(
                f"{name:8} {models!s:>7} {size!s:>10} {tier['hits']:>8} {tier['misses']:>8} {rate:>9}"
            )
        self.stdout.write(f"disk limit {tiers['disk']['max_mb']} MB; shared tier "
                          f"{tiers['shared']['uri'] or 'not configured'}")
