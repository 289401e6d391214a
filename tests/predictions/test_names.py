"""Model names and storage keys: a name is a slug or nothing is written; no key leaves its prefix; pages and
downloads cope with whatever name the database already holds."""

import pytest
from django.core.management import CommandError, call_command

from cache_app.models import Artifact
from cache_app.services.tiers.base import Location
from portal.downloads import attachment_header
from predictions import demo
from predictions.jobs import services as job_services
from predictions.models import MLModel
from predictions.services import PublishFailed, model_publish

BAD_NAMES = ["../../escaped", "a/b", "crlf\r\nX-Injected: 1", "tab\tname", "with space", "quote\"d", "", "é", "cache",
             "x" * 101]


def files_under(folder) -> list:
    return sorted(str(path) for path in folder.rglob("*") if path.is_file()) if folder.exists() else []


@pytest.mark.django_db
@pytest.mark.parametrize("name", BAD_NAMES)
def test_publish_refuses_a_name_that_is_not_a_slug_and_writes_nothing(house_predictor_dir, tmp_path, name):
    with pytest.raises(PublishFailed, match="invalid model name"):
        model_publish(predictor_dir=house_predictor_dir, name=name)
    assert files_under(tmp_path) == []  # the origin folder (and anything beside it) untouched
    assert not MLModel.objects.exists() and not Artifact.objects.exists()


@pytest.mark.django_db
def test_publish_command_says_why_a_name_is_refused(house_predictor_dir, tmp_path):
    with pytest.raises(CommandError, match=r"invalid model name '\.\./\.\./escaped': use letters, digits"):
        call_command("publish_model", str(house_predictor_dir), "--name", "../../escaped")
    assert files_under(tmp_path) == [] and not MLModel.objects.exists()


@pytest.mark.parametrize("base", ["file:///srv/origin", "s3://bucket/models", "azure://container/models"])
@pytest.mark.parametrize(
    "key", ["../escaped.zip", "a/../../b.zip", "/etc/passwd", "a//b.zip", "./a.zip", "a/.", "", "a\\..\\b",
            "line\nbreak.zip", "nul\x00.zip", "del\x7f.zip"]
)
def test_a_storage_key_cannot_leave_its_prefix(base, key):
    with pytest.raises(ValueError, match="unsafe storage key"):
        Location.parse(base).child(key)


@pytest.mark.parametrize("base", ["file:///srv/origin", "s3://bucket/models", "azure://container/models/"])
def test_ordinary_keys_stay_under_the_prefix(base):
    location = Location.parse(base).child("house-prices/ab12.tar.gz")
    assert location.uri == base.rstrip("/") + "/house-prices/ab12.tar.gz"


@pytest.fixture
def bad_name_in_the_database(house_version):
    """A model recorded before names were checked, with the name of the issue's report."""
    MLModel.objects.filter(pk=house_version.model_id).update(name="../../escaped\r\nX")
    return house_version


@pytest.mark.django_db
def test_every_page_renders_a_bad_name_already_in_the_database(bad_name_in_the_database, client, django_user_model):
    staff = django_user_model.objects.create_superuser("ops", password="pw-ops-123")
    client.force_login(staff)
    catalog = client.get("/")
    assert catalog.status_code == 200
    html = catalog.content.decode()
    assert "../../escaped" in html and 'class="model-link"' in html
    assert 'href="/models/' not in html  # listed, not linked: no URL can hold that name
    version = bad_name_in_the_database
    for url in ["/jobs/", "/admin/predictions/mlmodel/", f"/admin/predictions/mlmodel/{version.model_id}/change/",
                "/admin/predictions/modelversion/", "/admin/cache/dashboard/", "/api/models/",
                f"/api/models/{version.model_id}"]:
        response = client.get(url)
        assert response.status_code == 200, url


@pytest.mark.parametrize(
    "filename, header",
    [
        ("house-prices-v1-job3.csv", 'attachment; filename="house-prices-v1-job3.csv"'),
        ("../../escaped\r\nX-Injected: 1-v1.csv", 'attachment; filename="escaped_X-Injected_1-v1.csv"'),
        ('say "hi"; filename=evil.exe.csv', 'attachment; filename="say_hi_filename_evil.exe.csv"'),
        ("café.csv", 'attachment; filename="caf.csv"'),
        ("..csv", 'attachment; filename="download.csv"'),
    ],
)
def test_download_file_names_are_made_safe(filename, header):
    assert attachment_header(filename) == header


@pytest.mark.django_db
def test_a_job_result_of_a_bad_name_downloads_under_a_safe_file_name(bad_name_in_the_database, user, api):
    frame = demo.house_prices(20, seed=3)
    job = job_services.job_create(
        version=bad_name_in_the_database, data=frame.to_csv(index=False).encode(), user=user
    )
    for chunk_id in job.chunks.values_list("pk", flat=True):
        job_services.chunk_run(chunk_id=chunk_id)
    response = api.get(f"/api/jobs/{job.pk}/result")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="escaped_X-v1-job{job.pk}.csv"'
