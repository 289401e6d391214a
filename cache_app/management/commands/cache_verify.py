from django.core.management.base import BaseCommand, CommandError
from django.http import Http404

from cache_app.dashboard import artifact_label
from cache_app.models import Artifact
from cache_app.services import maintenance
from predictions.selectors import model_get


class Command(BaseCommand):
    help = (
        "Re-hash this node's disk copies against their manifests. A corrupt copy is removed (the next use "
        "fetches it again) and the command exits non-zero, listing the problems."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only this model's versions (id or name)")

    def handle(self, *args, **options):
        artifacts = Artifact.objects.order_by("pk")
        if options["model"]:
            try:
                model = model_get(model_ref=options["model"])
            except Http404 as error:
                raise CommandError(str(error)) from error
            artifacts = artifacts.filter(model_version__model=model)
        checked, corrupt = 0, []
        for artifact in artifacts:
            verified = maintenance.artifact_verify(artifact=artifact)
            if not verified.checked:
                continue
            checked += 1
            label = artifact_label(artifact)
            if verified.ok:
                self.stdout.write(f"ok       {label}")
            else:
                self.stdout.write(f"CORRUPT  {label}")
                corrupt.append((label, verified.problems))
        if corrupt:
            details = "\n".join(f"{label}: {problem}" for label, problems in corrupt for problem in problems)
            raise CommandError(
                f"{len(corrupt)} of {checked} disk copies corrupt (removed; the next use fetches them again):\n"
                f"{details}"
            )
        self.stdout.write(f"{checked} disk copies verified, all intact")
