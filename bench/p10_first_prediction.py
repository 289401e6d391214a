"""P10: the first prediction of the large model from S3 in a fresh process, against the raw path (one streamed
GET + tarfile + TabularPredictor.load + predict), both in fresh processes, interleaved, in the same run."""

import json
import shutil
import statistics
import uuid

from bench.common import CACHE_DIR
from bench.p1_memory import sample_features
from bench.rows import not_measured, row
from bench.runtime import ServerUnavailable, base_env, point_s3_at, run_child, s3_client, start_moto, stop

BUCKET = "bench-p10"


def _archive(predictor_dir):
    """The predictor as a tar.gz, made once per model and kept (gzip of ~1 GB takes a while)."""
    from cache_app.services import archives

    archive = CACHE_DIR / f"{predictor_dir.name}.tar.gz"
    if not archive.exists():
        archives.archive_create(source_dir=predictor_dir, dest_path=archive, format="tar.gz")
    return archive


def run(ctx) -> list[dict]:
    from bench import models
    from cache_app.models import CacheEntry
    from cache_app.services.fetch import entry_dir
    from cache_app.services.tiers.base import Location
    from predictions.services import model_publish

    kind = "quick" if ctx.quick else "full"
    reps = 1 if ctx.quick else 3
    label = ctx.model_labels["large"]
    moto = None
    try:
        moto, moto_url = start_moto(ctx.run_dir)
        s3_client(moto_url).create_bucket(Bucket=BUCKET)
        point_s3_at(moto_url)
        large_dir = models.large_model(kind)
        version = model_publish(predictor_dir=large_dir, name=f"p10-large-{kind}", origin_uri=f"s3://{BUCKET}/models",
                                format="tar.gz", archive=_archive(large_dir))
        artifact = version.artifact
        key = Location.parse(artifact.source_uri).key
        env = base_env(ctx.run_dir, AWS_S3_ENDPOINT_URL=moto_url, PORTAL_PRELOAD_AUTOGLUON="0")
        features = json.dumps(sample_features())

        def cold() -> None:
            shutil.rmtree(entry_dir(artifact), ignore_errors=True)
            CacheEntry.objects.filter(artifact=artifact).delete()

        def once(mode: str) -> dict:
            cold()
            scratch = ctx.run_dir / f"p10-{uuid.uuid4().hex}"
            return run_child("bench.p10_child", [mode, str(version.pk), features, moto_url, BUCKET, key,
                                                 str(scratch)], env)

        # One of each first: moto's copy and the libraries' files in the page cache for both sides alike.
        once("raw")
        once("ours")
        times = {"ours": [], "raw": []}
        answers = set()
        for i in range(reps):
            for mode in (["ours", "raw"] if i % 2 == 0 else ["raw", "ours"]):
                result = once(mode)
                times[mode].append(result["seconds"])
                answers.add(result["prediction"])
        cold()
        o, r = statistics.median(times["ours"]), statistics.median(times["raw"])
        return [row(f"P10 {label}: first prediction from S3 in a fresh process (fetch + verify + extract + load + "
                    "predict)", round(o, 3), round(r, 3),
                    "one streamed get_object + tarfile r|gz + TabularPredictor.load + predict, fresh process", "s",
                    target="≤ 1.1x", met=o / r <= 1.1, reps=reps,
                    details={"ours_s": [round(x, 3) for x in times["ours"]],
                             "raw_s": [round(x, 3) for x in times["raw"]],
                             "archive_bytes": artifact.size_bytes, "format": "tar.gz",
                             "same_answer": len(answers) == 1,
                             "excluded": "interpreter start, django.setup, import autogluon and boto3, input frame"})]
    except ServerUnavailable as error:
        return [not_measured("P10 first prediction from S3", str(error), "≤ 1.1x")]
    finally:
        if moto is not None:
            stop(moto)
