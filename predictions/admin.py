"""Models and versions in the admin, with the cache actions acting on their artifacts.

Versions are published with ``publish_model`` (which uploads the archive and reads the schema), never typed
in: the version rows are read-only here. The cache actions are ``cache_app.admin.CacheActionsMixin``'s,
so they call the same services and need the same ``cache_app.manage_cache`` permission.
"""

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from cache_app.admin import CacheActionsMixin, ReadOnlyAdmin
from predictions import selectors
from predictions.models import MLModel, ModelVersion, PredictionLog

VERSION_FIELDS = ["number", "problem_type", "label", "eval_metric", "size", "sha256", "autogluon_version",
                  "created_at"]


def _size(version: ModelVersion) -> str:
    return filesizeformat(version.artifact.size_bytes or 0)


class ModelVersionInline(admin.TabularInline):
    model = ModelVersion
    fk_name = "model"
    fields = VERSION_FIELDS
    readonly_fields = VERSION_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-number"]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("artifact")

    @admin.display(description="size")
    def size(self, version):
        return _size(version)

    @admin.display(description="sha256")
    def sha256(self, version):
        return version.artifact.sha256


@admin.register(MLModel)
class MLModelAdmin(CacheActionsMixin, admin.ModelAdmin):
    """The name and description are editable; versions are shown, never edited. Clear, verify and unpin act
    on every version's artifact (a clear must leave no old version cached); warm and pin on the current one."""

    list_display = ["name", "current_version", "version_count", "cached_in"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "unseen_categories", "current_version", "created_at"]
    readonly_fields = ["current_version", "created_at"]
    inlines = [ModelVersionInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("current_version__artifact")

    def has_delete_permission(self, request, obj=None):
        return False  # versions PROTECT their artifacts; removing a model is not an admin click

    def cache_artifacts_of(self, queryset):
        versions = ModelVersion.objects.filter(model__in=queryset).select_related("artifact", "model")
        return [(str(v), v.artifact) for v in versions]

    def cache_current_artifacts_of(self, queryset):
        versions = ModelVersion.objects.filter(
            pk__in=[m.current_version_id for m in queryset if m.current_version_id]
        ).select_related("artifact", "model")
        return [(str(v), v.artifact) for v in versions]

    @admin.display(description="versions")
    def version_count(self, model):
        return model.versions.count()

    @admin.display(description="cached in")
    def cached_in(self, model):
        if model.current_version is None:
            return "-"
        return ", ".join(selectors.cache_tiers_of(version=model.current_version)) or "-"


@admin.register(ModelVersion)
class ModelVersionAdmin(CacheActionsMixin, ReadOnlyAdmin):
    list_display = ["__str__", "problem_type", "label", "size", "short_sha", "generation", "pinned", "cached_in",
                    "created_at"]
    list_filter = ["problem_type", "model"]
    search_fields = ["model__name", "artifact__sha256", "label"]
    list_select_related = ["model", "artifact"]
    fields = ["model", "number", "problem_type", "label", "eval_metric", "features", "class_labels", "size",
              "sha256", "source_uri", "autogluon_version", "python_version", "published_by", "created_at"]
    readonly_fields = fields

    def cache_artifacts_of(self, queryset):
        return [(str(v), v.artifact) for v in queryset.select_related("artifact", "model")]

    @admin.display(description="size", ordering="artifact__size_bytes")
    def size(self, version):
        return _size(version)

    @admin.display(description="sha256", ordering="artifact__sha256")
    def short_sha(self, version):
        return version.artifact.sha256[:16]

    @admin.display(description="sha256")
    def sha256(self, version):
        return version.artifact.sha256

    @admin.display(description="origin")
    def source_uri(self, version):
        return version.artifact.source_uri

    @admin.display(description="generation")
    def generation(self, version):
        return version.artifact.generation

    @admin.display(description="pinned", boolean=True)
    def pinned(self, version):
        return version.artifact.pinned

    @admin.display(description="cached in")
    def cached_in(self, version):
        return ", ".join(selectors.cache_tiers_of(version=version)) or "-"


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "version", "user", "channel", "rows", "served_from", "fetch_ms", "load_ms",
                    "predict_ms", "total_ms", "node"]
    list_filter = ["served_from", "channel", "node"]
    search_fields = ["version__model__name", "user__username"]
    list_select_related = ["version__model", "user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
