"""Settings come from the environment; production refuses to start without its secrets."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def manage(*args, env: dict, tmp_path) -> subprocess.CompletedProcess:
    # Only what the test gives: not the CI's DATABASE_URL, REDIS_URL or anything else the portal reads.
    portal_variables = ("DJANGO_", "DATABASE_URL", "REDIS_URL", "MODEL_", "PORTAL_", "AWS_", "AZURE_", "PREDICT_")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(portal_variables)}
    clean.update(PORTAL_DATA_DIR=str(tmp_path), PORTAL_PRELOAD_AUTOGLUON="0", **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_production_passes_the_deploy_check(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DJANGO_PRODUCTION": "true",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_ALLOWED_HOSTS": "portal.example.com",
        },
        tmp_path=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret(tmp_path):
    result = manage("check", env={"DJANGO_PRODUCTION": "true"}, tmp_path=tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_database_url_switches_the_database(tmp_path):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.db import connection; print(connection.vendor)",
        env={"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"},
        tmp_path=tmp_path,
    )
    assert result.stdout.strip() == "postgresql", result.stderr


def test_embedded_default_keeps_everything_under_the_data_folder(tmp_path):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; print(s.DATABASES['default']['NAME']); print(s.MODEL_CACHE_DIR);"
        " print(s.MODEL_ORIGIN_URI); print(s.REDIS_URL == '')",
        env={},
        tmp_path=tmp_path,
    )
    lines = result.stdout.split()
    assert lines[0] == str(tmp_path / "portal.sqlite3"), result.stderr
    assert lines[1] == str(tmp_path / "model_cache")
    assert lines[2] == (tmp_path / "origin").as_uri()
    assert lines[3] == "True"
