"""The model registry (models, versions, their feature schema) and the record of predictions."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from cache_app.models import Artifact


class MLModel(models.Model):
    class UnseenCategories(models.TextChoices):
        REFUSE = "refuse", "refuse the row (400 naming the closest known values)"
        WARN = "warn", "accept with a warning (the model treats the value as missing)"

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    # What a request gets for a category the model never saw (see predictions.contract).
    unseen_categories = models.CharField(
        max_length=8, choices=UnseenCategories.choices, default=UnseenCategories.REFUSE
    )
    current_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "model"
        ordering = ["name"]
        permissions = [
            ("publish_model", "Can publish new versions of models over HTTP"),
            ("promote_model", "Can move aliases and the current version of models"),
        ]

    def __str__(self) -> str:
        return self.name


class ModelVersion(models.Model):
    class ProblemType(models.TextChoices):
        REGRESSION = "regression", "regression"
        BINARY = "binary", "binary classification"
        MULTICLASS = "multiclass", "multiclass classification"
        QUANTILE = "quantile", "quantile regression"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    artifact = models.OneToOneField(Artifact, on_delete=models.PROTECT, related_name="model_version")
    label = models.CharField(max_length=255)
    problem_type = models.CharField(max_length=16, choices=ProblemType.choices)
    eval_metric = models.CharField(max_length=64, blank=True)
    # [{"name": "sqft", "dtype": "float", "categories": [...]?}, ...] in the predictor's column order.
    features = models.JSONField()
    class_labels = models.JSONField(default=list, blank=True)
    # What the model saw in training: {"source", "rows", "features": {name: {"min", "max", "missing_rate"}}}.
    input_contract = models.JSONField(default=dict, blank=True)
    autogluon_version = models.CharField(max_length=32, blank=True)
    python_version = models.CharField(max_length=16, blank=True)
    published_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    # Captured at publish (predictions.registry): ``predictor.leaderboard()`` as a list of rows, the importance
    # the publisher supplied ({"source", "features": [{"feature", "importance"}, ...]}), and the serving profile
    # measured in a fresh process ({"load_seconds", "resident_bytes", "one_row_ms", "rows_per_second", ...}).
    leaderboard = models.JSONField(default=list, blank=True)
    feature_importance = models.JSONField(default=dict, blank=True)
    serving_profile = models.JSONField(default=dict, blank=True)
    published_via = models.CharField(max_length=8, blank=True)  # cli, api or admin

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="one_number_per_model_version")]
        ordering = ["model__name", "-number"]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.number}"

    @property
    def feature_names(self) -> list[str]:
        return [feature["name"] for feature in self.features]


class PredictionLog(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="predictions")
    node = models.CharField(max_length=255)
    rows = models.PositiveIntegerField()
    served_from = models.CharField(max_length=8)
    fetch_ms = models.FloatField()
    load_ms = models.FloatField()
    predict_ms = models.FloatField()
    total_ms = models.FloatField()
    channel = models.CharField(max_length=8, default="api")  # api, web or job
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.version} x{self.rows} from {self.served_from}"


class BatchJob(models.Model):
    """A CSV batch prediction, split into ``BatchChunk`` rows that workers predict in any order."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="jobs")
    filename = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    # The upload's header (as a CSV line) and the result's, so chunks store rows only.
    input_header = models.TextField()
    result_header = models.TextField(blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    # {"message": "...", "errors": {"row 4, column sqft": "..."}}; empty while the job has not failed.
    error = models.JSONField(default=dict, blank=True)
    node = models.CharField(max_length=255, blank=True)  # where it was submitted
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # The last sign of life (created, a chunk stored): a running job silent for too long is failed.
    progressed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When its files were deleted (``results_clean``): the job stays listed, its result is gone.
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.version}, {self.status})"


class BatchChunk(models.Model):
    """Rows ``first_record + 1 ..`` of a job's CSV (record numbers as ``predictions.inputs`` counts them).

    Unique per (job, index) and finished with a conditional update, so a chunk redelivered after a worker
    died is stored and counted once.
    """

    job = models.ForeignKey(BatchJob, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_record = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()
    # Names in the ``results`` storage (predictions.result_files): the chunk's records and, once done, its
    # result rows, headers excluded.
    input_name = models.CharField(max_length=255)
    result_name = models.CharField(max_length=255, blank=True)
    done = models.BooleanField(default=False)
    node = models.CharField(max_length=255, blank=True)  # who predicted it
    # "node:pid" of the latest attempt, so operators (and tests) can tell which process holds a chunk.
    worker = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="one_chunk_per_job_index")]
        ordering = ["job", "index"]

    def __str__(self) -> str:
        return f"job {self.job_id} chunk {self.index}"


# --- Aliases and promotions (predictions.aliases, predictions.promotion) ------------------------------------


class ModelAlias(models.Model):
    """A named pointer to one version of a model (``production``, ``staging``...): ``?alias=`` on predict."""

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.SlugField(max_length=64)
    version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="aliases")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "alias"
        verbose_name_plural = "aliases"
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="one_alias_name_per_model")]
        ordering = ["model__name", "name"]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"


class Promotion(models.Model):
    """One move of an alias (or, with a blank ``alias_name``, of the current version): who asked, when, what
    it pointed at before, and how warming the target went. The moves that switched are the aliases' history."""

    class Status(models.TextChoices):
        WARMING = "warming", "warming"
        SWITCHED = "switched", "switched"
        FAILED = "failed", "failed"

    model = models.ForeignKey(MLModel, on_delete=models.CASCADE, related_name="promotions")
    alias_name = models.CharField(max_length=64, blank=True)  # blank: the current version
    from_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    to_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="promotions")
    rollback = models.BooleanField(default=False)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.WARMING, db_index=True)
    reason = models.TextField(blank=True)  # why it failed
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.alias_name or 'current'} -> v{self.to_version.number}"


class PromotionWarm(models.Model):
    """One serving process's answer to a promotion: the target is on its node's disk and in its memory, or why not."""

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="warms")
    node = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    ok = models.BooleanField()
    served_from = models.CharField(max_length=8, blank=True)  # the tier the warm-up found it in
    seconds = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["promotion", "node", "pid"], name="one_warm_per_promotion_process")
        ]
        ordering = ["node", "pid"]


class ServingProcess(models.Model):
    """A server process that answers predictions (a gunicorn worker), alive while ``seen_at`` is recent.

    A promotion waits for every live one to have warmed its target."""

    node = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["node", "pid"], name="one_serving_process_per_node_pid")]

    def __str__(self) -> str:
        return f"{self.node}:{self.pid}"
