from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from tqdm import tqdm

from cache_app.services.serving import WARM_ERRORS, WARM_SOURCES
from predictions.model_cache import model_cache_warm
from predictions.models import ModelVersion
from predictions.selectors import NotFound, model_get, version_get


class Command(BaseCommand):
    help = (
        "Warm models on this node: fetched onto its disk, verified and loaded once (so a model that cannot be "
        "served says so now): one model's current version (--model, id or name), every pinned version "
        "(--pinned), or by default every model's current version. Serving processes keep their own memory copies."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--model", help="model id or name")
        which.add_argument("--pinned", action="store_true", help="every pinned version")

    def handle(self, *args, **options):
        versions = self._versions(options)
        if not versions:
            self.stdout.write("Nothing to warm.")
            return
        failures, lines = [], []
        # The bar goes to stderr (the raw stream: OutputWrapper would end every redraw with a newline).
        bar_file = getattr(self.stderr, "_out", self.stderr)
        for version in tqdm(versions, desc="warming", unit="model", file=bar_file):
            try:
                served = model_cache_warm(version=version, via="command")
            except WARM_ERRORS as error:
                failures.append(f"{version}: {error}")
                continue
            source = WARM_SOURCES.get(served.tier, f"fetched from {served.tier}")
            lines.append(f"warmed {version}: {source} in {served.fetch_seconds + served.load_seconds:.2f} s")
        for line in lines:
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{len(failures)} of {len(versions)} could not be warmed:\n" + "\n".join(failures))
        self.stdout.write(f"{len(versions)} warm on this node's disk")

    def _versions(self, options) -> list[ModelVersion]:
        if options["model"]:
            try:
                return [version_get(model=model_get(model_ref=options["model"]))]
            except NotFound as error:
                raise CommandError(str(error)) from error
        versions = ModelVersion.objects.select_related("artifact", "model")
        if options["pinned"]:
            return list(versions.filter(artifact__pinned=True).order_by("model__name", "number"))
        return list(versions.filter(model__current_version=F("pk")).order_by("model__name"))
