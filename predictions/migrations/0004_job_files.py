"""Job chunks keep their records and results as files in the ``results`` storage instead of text columns."""

import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import migrations, models


def texts_to_files(apps, schema_editor):
    chunk_model = apps.get_model("predictions", "BatchChunk")
    storage = storages["results"]
    for chunk in chunk_model.objects.select_related("job").iterator():
        folder = f"jobs/{chunk.job_id}-{int(chunk.job.created_at.timestamp())}"
        chunk.input_name = storage.save(
            f"{folder}/input-{chunk.index:05d}-{uuid.uuid4().hex}.csv", ContentFile(chunk.input_csv.encode())
        )
        if chunk.done:
            chunk.result_name = storage.save(
                f"{folder}/result-{chunk.index:05d}-{uuid.uuid4().hex}.csv", ContentFile(chunk.result_csv.encode())
            )
        chunk.save(update_fields=["input_name", "result_name"])


class Migration(migrations.Migration):
    dependencies = [("predictions", "0003_input_contract")]

    operations = [
        migrations.AddField("batchchunk", "input_name", models.CharField(default="", max_length=255), preserve_default=False),
        migrations.AddField("batchchunk", "result_name", models.CharField(blank=True, max_length=255)),
        migrations.AddField("batchjob", "progressed_at", models.DateTimeField(blank=True, null=True)),
        migrations.AddField("batchjob", "expired_at", models.DateTimeField(blank=True, null=True)),
        migrations.RunPython(texts_to_files, migrations.RunPython.noop),
        migrations.RemoveField("batchchunk", "input_csv"),
        migrations.RemoveField("batchchunk", "result_csv"),
    ]
