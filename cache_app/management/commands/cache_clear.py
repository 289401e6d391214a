from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from cache_app.services import maintenance
from predictions.selectors import model_get


class Command(BaseCommand):
    help = (
        "Clear cached models: every model, or one (--model, by id or name). This node's memory and disk copies "
        "go now and other nodes drop theirs on next use; --tier shared deletes the shared copies too. "
        "The origin is never touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="model id or name (default: every model)")
        parser.add_argument("--tier", choices=["local", "shared"], default="local",
                            help="'shared' also deletes the fleet's shared copies")

    def handle(self, *args, **options):
        include_shared = options["tier"] == "shared"
        if options["model"] is None:
            cleared = maintenance.artifact_clear_all(include_shared=include_shared)
            self.stdout.write(f"All model cache cleared ({len(cleared)} artifacts, "
                              f"{_mb(sum(c.disk_bytes_freed for c in cleared))} MB freed on disk)")
            return
        try:
            model = model_get(model_ref=options["model"])
        except Http404 as error:
            raise CommandError(f"no model {options['model']!r}") from error
        versions = model.versions.select_related("artifact").order_by("number")
        cleared = [maintenance.artifact_clear(artifact=v.artifact, include_shared=include_shared) for v in versions]
        shared = ", shared copies deleted" if any(c.shared_deleted for c in cleared) else ""
        self.stdout.write(f"Cache cleared for model {options['model']} ({len(cleared)} versions, "
                          f"{_mb(sum(c.disk_bytes_freed for c in cleared))} MB freed on disk{shared})")


def _mb(size: int) -> float:
    return round(size / (1024 * 1024), 2)
