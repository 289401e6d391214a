import pytest
from django.core.management import CommandError, call_command

from cache_app.models import Artifact
from cache_app.services.integrity import file_sha256
from cache_app.services.tiers.base import Location
from predictions.models import MLModel, ModelVersion


def test_publish_records_the_schema_read_from_the_predictor(house_version):
    version = ModelVersion.objects.get(pk=house_version.pk)
    assert version.number == 1
    assert version.model.current_version == version
    assert version.label == "price"
    assert version.problem_type == "regression"
    assert version.eval_metric == "root_mean_squared_error"
    by_name = {f["name"]: f for f in version.features}
    assert list(by_name) == ["sqft", "bedrooms", "age_years", "city"]
    assert by_name["sqft"]["dtype"] == "float"
    assert by_name["bedrooms"]["dtype"] == "int"
    assert sorted(by_name["city"]["categories"]) == ["austin", "boston", "chicago", "denver"]


def test_publish_uploads_an_archive_whose_checksum_is_recorded(house_version):
    artifact = house_version.artifact
    path = Location.parse(artifact.source_uri).key
    assert file_sha256(path) == artifact.sha256
    assert artifact.size_bytes > 0 and artifact.unpacked_bytes > artifact.size_bytes / 10


def test_publishing_again_adds_a_version_and_makes_it_current(house_version, house_predictor_dir):
    from predictions.services import model_publish

    second = model_publish(predictor_dir=house_predictor_dir, name="house-prices", format="tar.gz")
    assert second.number == 2
    assert MLModel.objects.get(name="house-prices").current_version == second


def test_classifier_schema_has_class_labels(churn_version):
    assert churn_version.problem_type == "binary"
    assert sorted(churn_version.class_labels) == ["no", "yes"]


@pytest.mark.django_db
def test_publish_command_refuses_a_missing_path(tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("publish_model", str(tmp_path / "nope"), "--name", "x")
    assert not Artifact.objects.exists()


@pytest.mark.django_db
def test_publish_command_refuses_a_folder_that_is_not_a_predictor(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CommandError, match="not an AutoGluon TabularPredictor"):
        call_command("publish_model", str(tmp_path), "--name", "x")
    assert not Artifact.objects.exists() and not MLModel.objects.exists()


@pytest.mark.django_db
def test_publish_command_refuses_an_unreachable_origin(house_predictor_dir, settings):
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port
    settings.AWS_ACCESS_KEY_ID = settings.AWS_SECRET_ACCESS_KEY = "testing"
    settings.MODEL_FETCH_RETRIES = 1
    with pytest.raises(CommandError, match="could not upload to the origin"):
        call_command(
            "publish_model", str(house_predictor_dir), "--name", "x", "--origin", "s3://no-such-bucket/models"
        )
    assert not Artifact.objects.exists() and not MLModel.objects.exists()


@pytest.mark.django_db
def test_publish_command_prints_what_it_published(house_predictor_dir, capsys):
    call_command("publish_model", str(house_predictor_dir), "--name", "houses", "--format", "tar.gz")
    out = capsys.readouterr().out
    version = ModelVersion.objects.get(model__name="houses")
    assert "houses v1" in out and version.artifact.sha256 in out
