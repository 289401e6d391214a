from django.core.management.base import BaseCommand, CommandError

from predictions.model_cache import model_cache_verify, model_versions
from predictions.selectors import NotFound, model_get


class Command(BaseCommand):
    help = (
        "Re-hash this node's disk copies against their manifests. A corrupt copy is invalidated everywhere (the "
        "next use fetches it again) and the command exits non-zero, listing the problems."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", help="only this model's versions (id or name)")

    def handle(self, *args, **options):
        versions = None
        if options["model"]:
            try:
                versions = model_versions(model_get(model_ref=options["model"]))
            except NotFound as error:
                raise CommandError(str(error)) from error
        checked, corrupt = 0, []
        for label, verified in model_cache_verify(versions=versions, via="command"):
            if not verified.checked:
                continue
            checked += 1
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
