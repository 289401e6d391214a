from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from django.http import Http404
from tqdm import tqdm

from cache_app.admin import WARM_ERRORS
from cache_app.dashboard import artifact_label
from cache_app.models import Artifact
from cache_app.services import maintenance
from predictions.models import ModelVersion
from predictions.selectors import model_get, version_get


class Command(BaseCommand):
    help = (
        "Bring models onto this node's disk: one model's current version (--model, id or name), every pinned "
        "artifact (--pinned), or by default every model's current version."
    )

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--model", help="model id or name")
        which.add_argument("--pinned", action="store_true", help="every pinned artifact")

    def handle(self, *args, **options):
        artifacts = self._artifacts(options)
        if not artifacts:
            self.stdout.write("Nothing to warm.")
            return
        failures, lines = [], []
        # The bar goes to stderr (the raw stream: OutputWrapper would end every redraw with a newline).
        bar_file = getattr(self.stderr, "_out", self.stderr)
        for artifact in tqdm(artifacts, desc="warming", unit="model", file=bar_file):
            label = artifact_label(artifact)
            try:
                fetched = maintenance.artifact_warm(artifact=artifact)
            except WARM_ERRORS as error:
                failures.append(f"{label}: {error}")
                continue
            source = "already on disk" if fetched.tier == "disk" else f"fetched from {fetched.tier}"
            lines.append(f"warmed {label}: {source} in {fetched.seconds:.2f} s")
        for line in lines:
            self.stdout.write(line)
        if failures:
            raise CommandError(f"{len(failures)} of {len(artifacts)} could not be warmed:\n" + "\n".join(failures))
        self.stdout.write(f"{len(artifacts)} warm on this node's disk")

    def _artifacts(self, options) -> list[Artifact]:
        if options["model"]:
            try:
                return [version_get(model=model_get(model_ref=options["model"])).artifact]
            except Http404 as error:
                raise CommandError(str(error)) from error
        if options["pinned"]:
            return list(Artifact.objects.filter(pinned=True).order_by("pk"))
        current = ModelVersion.objects.filter(model__current_version=F("pk")).select_related("artifact")
        return [v.artifact for v in current.order_by("model__name")]
