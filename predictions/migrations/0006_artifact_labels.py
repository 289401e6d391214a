"""Artifacts published before they carried a label get their version's name ("house-prices v3")."""

from django.db import migrations


def label_artifacts(apps, schema_editor):
    version_model = apps.get_model("predictions", "ModelVersion")
    for version in version_model.objects.select_related("model", "artifact").filter(artifact__label=""):
        version.artifact.label = f"{version.model.name} v{version.number}"
        version.artifact.save(update_fields=["label"])


class Migration(migrations.Migration):
    dependencies = [("predictions", "0005_model_registry"), ("cache_app", "0002_artifact_label")]

    operations = [migrations.RunPython(label_artifacts, migrations.RunPython.noop)]
