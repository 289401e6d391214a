from django.core.management.base import BaseCommand, CommandError

from predictions.model_cache import model_cache_clear
from predictions.selectors import NotFound, model_get


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
        model = None
        if options["model"] is not None:
            try:
                model = model_get(model_ref=options["model"])
            except NotFound as error:
                raise CommandError(f"no model {options['model']!r}") from error
        cleared = model_cache_clear(model=model, include_shared=include_shared, via="command")
        freed = round(cleared.disk_bytes_freed / (1024 * 1024), 2)
        if model is None:
            self.stdout.write(f"All model cache cleared ({len(cleared.artifacts)} artifacts, {freed} MB freed on disk)")
            return
        shared = ", shared copies deleted" if cleared.shared_deleted else ""
        self.stdout.write(f"Cache cleared for model {options['model']} ({len(cleared.artifacts)} versions, "
                          f"{freed} MB freed on disk{shared})")
