from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cache_app.models import Artifact
from predictions.services import PublishFailed, model_publish


class Command(BaseCommand):
    help = "Archive an AutoGluon TabularPredictor folder, upload it to the origin and register a new version."

    def add_arguments(self, parser):
        parser.add_argument("predictor_dir", type=Path)
        parser.add_argument("--name", required=True, help="Model name (a slug); a new version if it exists.")
        parser.add_argument("--origin", help="Origin URI prefix (default: MODEL_ORIGIN_URI).")
        parser.add_argument("--format", choices=Artifact.Format.values, default=Artifact.Format.ZIP)
        parser.add_argument(
            "--reference-csv",
            type=Path,
            help="A CSV of the inputs the model was trained on, to record the ranges and missing rates requests "
            "are checked against (default: the training data the predictor kept).",
        )

    def handle(self, *args, predictor_dir, name, origin, format, reference_csv, **options):
        try:
            version = model_publish(
                predictor_dir=predictor_dir, name=name, origin_uri=origin, format=format, reference_csv=reference_csv,
                profile=True,
            )
        except PublishFailed as error:
            raise CommandError(str(error)) from error
        artifact = version.artifact
        self.stdout.write(
            f"published {version} ({version.problem_type}, {artifact.size_bytes} bytes, "
            f"sha256 {artifact.sha256}) to {artifact.source_uri}"
        )
