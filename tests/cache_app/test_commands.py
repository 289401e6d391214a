"""The cache's management commands, run as staff would: their output and how they end."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from cache_app.models import Artifact, CacheEntry
from cache_app.services.memory import memory_tier
from cache_app.services.fetch import MODEL_FOLDER
from cache_app.services.maintenance import artifact_pin
from cache_app.services.serving import artifact_warm
from predictions.services import predictor_serve
from tests.processes import child_env


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def ready_disk(artifact):
    return CacheEntry.objects.filter(artifact=artifact, tier="disk", state="ready", generation=artifact.generation)


@pytest.mark.django_db
def test_stats_on_an_empty_cache():
    out, _ = run("cache_stats")
    assert out.splitlines()[0] == "Cache contains 0 models using 0.0 MB"
    assert str(settings.MODEL_CACHE_DIR) in out


def test_stats_text_and_json(house_version):
    predictor_serve(version=house_version)
    predictor_serve(version=house_version)

    out, _ = run("cache_stats")
    lines = out.splitlines()
    assert lines[0].startswith("Cache contains 1 models using ")
    memory = next(line for line in lines if line.startswith("memory"))
    assert memory.split()[1:] == ["1", memory.split()[2], "1", "1", "50.0%"]

    out, _ = run("cache_stats", "--json")
    stats = json.loads(out)
    assert stats["total_models"] == 1 and stats["total_size_mb"] > 0
    assert stats["cache_dir"] == str(settings.MODEL_CACHE_DIR)
    assert stats["tiers"]["origin"]["hits"] == 1


def test_clear_one_model_by_name_and_by_id(house_version, churn_version):
    artifact_warm(artifact=house_version.artifact)
    artifact_warm(artifact=churn_version.artifact)

    out, _ = run("cache_clear", "--model", "house-prices")
    assert out.startswith("Cache cleared for model house-prices (1 versions, ")
    assert Artifact.objects.get(pk=house_version.artifact_id).generation == 2
    assert not ready_disk(Artifact.objects.get(pk=house_version.artifact_id)).exists()
    assert ready_disk(churn_version.artifact).exists()

    out, _ = run("cache_clear", "--model", str(churn_version.model_id))
    assert out.startswith(f"Cache cleared for model {churn_version.model_id} (1 versions")
    assert not CacheEntry.objects.filter(tier="disk", state="ready").exists()


def test_clear_all(house_version, churn_version):
    artifact_warm(artifact=house_version.artifact)
    out, _ = run("cache_clear")
    assert out.startswith("All model cache cleared (2 artifacts, ")
    assert set(Artifact.objects.values_list("generation", flat=True)) == {2}


@pytest.mark.django_db
def test_clear_unknown_model_fails():
    with pytest.raises(CommandError, match="no model 'nope'"):
        run("cache_clear", "--model", "nope")


def test_clear_rejects_an_unknown_tier(house_version):
    with pytest.raises(CommandError):
        run("cache_clear", "--tier", "origin")


def test_warm_one_model_shows_progress_and_where_it_came_from(house_version, churn_version):
    out, err = run("cache_warm", "--model", "house-prices")
    assert "warmed house-prices v1: fetched from origin" in out
    assert out.splitlines()[-1] == "1 warm on this node's disk"
    assert "warming" in err and "1/1" in err  # the tqdm bar
    assert ready_disk(house_version.artifact).exists()
    assert not ready_disk(churn_version.artifact).exists()

    out, _ = run("cache_warm", "--model", "house-prices")
    assert "warmed house-prices v1: already in memory" in out  # loaded once, in this process
    memory_tier().clear()
    out, _ = run("cache_warm", "--model", "house-prices")
    assert "warmed house-prices v1: already on disk" in out


def test_warm_pinned_only(house_version, churn_version):
    artifact_pin(artifact=churn_version.artifact, pinned=True)
    out, _ = run("cache_warm", "--pinned")
    assert "customer-churn v1" in out and "house-prices" not in out
    assert ready_disk(churn_version.artifact).exists() and not ready_disk(house_version.artifact).exists()


def test_warm_everything_by_default(house_version, churn_version):
    out, err = run("cache_warm")
    assert "2/2" in err
    assert out.splitlines()[-1] == "2 warm on this node's disk"
    assert CacheEntry.objects.filter(tier="disk", state="ready").count() == 2


def test_warm_refuses_model_and_pinned_together(house_version):
    with pytest.raises(CommandError):
        run("cache_warm", "--model", "house-prices", "--pinned")


def test_warm_fails_non_zero_when_the_origin_is_gone(house_version):
    Path(house_version.artifact.source_uri.removeprefix("file://")).unlink()
    with pytest.raises(CommandError, match="1 of 1 could not be warmed:\nhouse-prices v1: could not fetch"):
        run("cache_warm", "--model", "house-prices")


@pytest.mark.django_db
def test_warm_with_nothing_to_do():
    out, _ = run("cache_warm", "--pinned")
    assert out.strip() == "Nothing to warm."


def test_verify_intact(house_version, churn_version):
    artifact_warm(artifact=house_version.artifact)
    artifact_warm(artifact=churn_version.artifact)
    out, _ = run("cache_verify")
    assert "ok       house-prices v1" in out and "ok       customer-churn v1" in out
    assert out.splitlines()[-1] == "2 disk copies verified, all intact"


def test_verify_fails_non_zero_listing_the_problems(house_version, churn_version):
    artifact_warm(artifact=house_version.artifact)
    artifact_warm(artifact=churn_version.artifact)
    entry = ready_disk(house_version.artifact).get()
    model_dir = Path(entry.location) / MODEL_FOLDER
    target = model_dir / "predictor.pkl"
    os.chmod(target, 0o644)
    target.write_bytes(target.read_bytes()[:-1] + b"X")
    (model_dir / "models").chmod(0o755)
    (model_dir / "models" / "intruder.txt").write_text("hello")

    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("cache_verify", stdout=out, stderr=StringIO())
    message = str(raised.value)
    assert message.startswith("1 of 2 disk copies corrupt")
    assert "house-prices v1: changed file: predictor.pkl (blake3 differs)" in message
    assert "house-prices v1: unexpected file: models/intruder.txt" in message
    assert "CORRUPT  house-prices v1" in out.getvalue() and "ok       customer-churn v1" in out.getvalue()
    assert not ready_disk(house_version.artifact).exists()


def test_verify_one_model(house_version, churn_version):
    artifact_warm(artifact=house_version.artifact)
    artifact_warm(artifact=churn_version.artifact)
    out, _ = run("cache_verify", "--model", "customer-churn")
    assert "customer-churn v1" in out and "house-prices" not in out


@pytest.mark.django_db(transaction=True)
def test_verify_exit_code_in_a_real_process(house_version, tmp_path):
    """Through manage.py, as cron or an operator runs it: exit 0 when intact, 1 on corruption."""
    artifact_warm(artifact=house_version.artifact)
    env = child_env(settings)
    manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "cache_verify"]
    intact = subprocess.run(manage, env=env, capture_output=True, text=True, timeout=120)
    assert intact.returncode == 0, intact.stderr
    assert "1 disk copies verified" in intact.stdout

    target = Path(ready_disk(house_version.artifact).get().location) / MODEL_FOLDER / "predictor.pkl"
    os.chmod(target, 0o644)
    target.write_bytes(b"not a pickle")
    corrupt = subprocess.run(manage, env=env, capture_output=True, text=True, timeout=120)
    assert corrupt.returncode == 1
    assert "changed file: predictor.pkl" in corrupt.stderr
