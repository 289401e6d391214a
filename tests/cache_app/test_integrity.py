"""A disk copy whose bytes differ from its manifest is never loaded: real AutoGluon models, damaged on disk
between two process lifetimes, still answer correctly, and the damaged copy is replaced."""

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from cache_app.models import Artifact, CacheEntry, Tier
from cache_app.services import runtime
from cache_app.services.fetch import MODEL_FOLDER, disk_copy_problems
from cache_app.services.memory import memory_tier
from cache_app.services.serving import artifact_serve
from predictions.loaders import predictor_load
from predictions.models import ModelVersion

HOUSE = {"sqft": 1800.0, "bedrooms": 3, "age_years": 12, "city": "boston"}


def predict_house(version: ModelVersion) -> tuple[str, float]:
    """As a request does: read the version's row afresh, serve the predictor, predict one row."""
    version = ModelVersion.objects.select_related("artifact").get(pk=version.pk)
    served = artifact_serve(artifact=version.artifact, loader=predictor_load)
    return served.tier, float(served.obj.predict(pd.DataFrame([HOUSE])).iloc[0])


def disk_model_dir(artifact: Artifact) -> Path:
    entry = CacheEntry.objects.get(artifact=artifact, tier=Tier.DISK, state=CacheEntry.State.READY)
    return Path(entry.location) / MODEL_FOLDER


def writable(path: Path) -> Path:
    os.chmod(path, 0o644)  # disk copies are read-only; the damage comes from outside the cache
    return path


def change_leaf_values(model_pickle: Path) -> None:
    """Change the leading digit of LightGBM leaf values: same size, still loads, answers wrong numbers."""
    data = bytearray(model_pickle.read_bytes())
    changed = 0
    for match in re.finditer(rb"leaf_value=([-0-9.e ]+)", bytes(data)):
        start, end = match.span(1)
        digit = next((i for i in range(start, end) if data[i] in b"12345678"), None)
        if digit is not None:
            data[digit] += 1
            changed += 1
    assert changed > 10
    size = model_pickle.stat().st_size
    model_pickle.write_bytes(bytes(data))
    assert model_pickle.stat().st_size == size


def test_changed_digits_in_a_disk_copy_are_caught_and_the_answer_stays_right(house_version):
    assert predict_house(house_version)[0] == Tier.ORIGIN
    tier, expected = predict_house(house_version)
    assert tier == Tier.MEMORY
    damaged = disk_model_dir(house_version.artifact)
    change_leaf_values(writable(damaged / "models" / "LightGBM" / "model.pkl"))

    runtime.reset()  # a restart: memory empty, the damaged copy on disk
    tier, answer = predict_house(house_version)
    assert answer == expected
    assert tier == Tier.ORIGIN  # fetched again rather than loaded from the damaged copy
    assert not damaged.parent.exists()
    artifact = Artifact.objects.get(pk=house_version.artifact.pk)
    assert artifact.generation == house_version.artifact.generation + 1  # every process drops the old copy
    assert disk_copy_problems(disk_model_dir(artifact).parent) == []
    assert memory_tier().get(artifact.cache_key) is not None

    runtime.reset()
    assert predict_house(house_version) == (Tier.DISK, expected)  # the repaired copy passes its check


def test_a_truncated_learner_pickle_is_refetched_not_a_500(house_version):
    _, expected = predict_house(house_version)
    learner = writable(disk_model_dir(house_version.artifact) / "learner.pkl")
    learner.write_bytes(learner.read_bytes()[:200])

    runtime.reset()
    assert predict_house(house_version) == (Tier.ORIGIN, expected)


def test_a_disk_copy_without_its_manifest_is_refetched(house_version):
    _, expected = predict_house(house_version)
    folder = disk_model_dir(house_version.artifact).parent
    (folder / "MANIFEST.json").unlink()

    runtime.reset()
    assert predict_house(house_version) == (Tier.ORIGIN, expected)


def test_a_copy_whose_row_is_gone_and_manifest_missing_is_quarantined(house_version, settings):
    _, expected = predict_house(house_version)
    folder = disk_model_dir(house_version.artifact).parent
    (folder / "MANIFEST.json").unlink()
    CacheEntry.objects.filter(artifact=house_version.artifact).delete()  # e.g. the database was reset

    runtime.reset()
    assert predict_house(house_version) == (Tier.ORIGIN, expected)
    quarantined = list((Path(settings.MODEL_CACHE_DIR) / ".quarantine").iterdir())
    assert [path.name.rsplit(".", 1)[0] for path in quarantined] == [folder.name]


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_verify_command_damage_is_dropped_from_memory_too(house_version, damage):
    """cache_verify on a copy another process has in memory: the generation moves on, so that process's
    next request (which reads the row) loads a good copy instead of serving the old object."""
    from cache_app.services.maintenance import artifact_verify

    _, expected = predict_house(house_version)
    pickle = writable(disk_model_dir(house_version.artifact) / "models" / "LightGBM" / "model.pkl")
    if damage == "flip":
        change_leaf_values(pickle)
    else:
        pickle.write_bytes(pickle.read_bytes()[:100])
    assert not artifact_verify(artifact=house_version.artifact).ok
    assert memory_tier().snapshot() == []
    assert predict_house(house_version) == (Tier.ORIGIN, expected)
