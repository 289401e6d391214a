"""Models and versions in the admin, with the cache actions acting on their artifacts.

Versions are published with ``publish_model`` (which uploads the archive and reads the schema), never typed
in: the version rows are read-only here. The cache actions are ``cache_app.admin.CacheActionsMixin``'s,
so they call the same services and need the same ``cache_app.manage_cache`` permission.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from cache_app.admin import CacheActionsMixin, ReadOnlyAdmin
from cache_app.services.errors import ArtifactUnavailable
from predictions import aliases, promotion, publishing, selectors
from predictions.models import MLModel, ModelAlias, ModelVersion, PredictionLog, Promotion

PROMOTE = "predictions.promote_model"
PUBLISH = "predictions.publish_model"
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
    actions = [*CacheActionsMixin.actions, "promote"]
    change_list_template = "admin/predictions/mlmodel/change_list.html"

    def get_urls(self):
        upload = self.admin_site.admin_view(self.upload_view)
        upload.max_body_setting = "MODEL_PUBLISH_MAX_UPLOAD_BYTES"  # portal.middleware.BodySizeLimitMiddleware
        return [path("upload/", upload, name="predictions_mlmodel_upload"), *super().get_urls()]

    def upload_view(self, request):
        """Publish a new version from an uploaded archive: the same service as ``POST .../versions``."""
        if not request.user.has_perm(PUBLISH):
            raise PermissionDenied
        form = UploadForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                published = publishing.version_publish_upload(
                    name=form.cleaned_data["name"], upload=form.cleaned_data["archive"],
                    importance_upload=form.cleaned_data.get("feature_importance"),
                    make_current=form.cleaned_data["make_current"], user=request.user, via="admin",
                )
            except publishing.InvalidUpload as error:
                form.add_error(error.field if error.field in form.fields else None, str(error))
            except ArtifactUnavailable as error:
                form.add_error(None, f"Not published: {error}")
            else:
                self._upload_message(request, published)
                return HttpResponseRedirect(reverse("admin:predictions_mlmodel_change", args=[published.version.model_id]))
        context = {**self.admin_site.each_context(request), "title": "Upload a new model version",
                   "opts": self.model._meta, "form": form}
        return TemplateResponse(request, "admin/predictions/upload.html", context, status=400 if form.errors else 200)

    def _upload_message(self, request, published) -> None:
        version = published.version
        if not published.created:
            self.message_user(request, f"This archive is already {version} (same SHA-256): nothing new was published.",
                              messages.WARNING)
            return
        moved = published.promotion
        if moved is not None and moved.status != Promotion.Status.SWITCHED:
            self.message_user(request, f"Published {version}, but it is not current: {moved.reason}", messages.ERROR)
            return
        current = " and made current after warming it in every serving process" if published.current else ""
        self.message_user(request, f"Published {version}{current}.", messages.SUCCESS)

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

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm(PROMOTE)

    @admin.action(permissions=["promote"], description="Move an alias or the current version (warms first)…")
    def promote(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose one model to move an alias of.", messages.WARNING)
            return None
        model = queryset.get()
        form = PromoteForm(request.POST if request.POST.get("post") == "yes" else None, model=model)
        if not form.is_valid():
            return _action_page(
                self, request, queryset, action="promote", title=f"Move an alias of {model.name}", form=form,
                summary="The new version is first loaded on this node's disk and in the memory of every serving "
                "process; the alias moves only once all have it, so no request after the move pays a cold start.",
                submit_label="Warm, then move",
            )
        name = form.cleaned_data["name"]
        requested = promotion.promotion_request(
            model=model, version=form.cleaned_data["version"], alias_name="" if name == aliases.CURRENT else name,
            user=request.user,
        )
        promotion.promotion_start(promotion=requested)
        self.message_user(request, f"Warming {requested.to_version} for {name}: this page follows its progress.")
        return HttpResponseRedirect(reverse("admin:predictions_promotion_change", args=[requested.pk]))

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


class PromoteForm(forms.Form):
    name = forms.CharField(
        initial="production", max_length=64, help_text="an alias such as production or staging; current: the "
        "version served when a request names neither"
    )
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.none())

    def __init__(self, *args, model: MLModel, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = model.versions.order_by("-number")
        self.fields["version"].label_from_instance = lambda v: f"v{v.number} ({v.created_at:%Y-%m-%d %H:%M})"

    def clean_name(self):
        name = self.cleaned_data["name"]
        try:
            aliases.alias_name_validate(name)
        except aliases.InvalidAlias as error:
            raise forms.ValidationError(str(error)) from None
        return name


class UploadForm(forms.Form):
    name = forms.SlugField(max_length=100, help_text="an existing model gets a new version; a new name a new model")
    archive = forms.FileField(help_text="a zip, tar.gz or tar of a TabularPredictor folder")
    feature_importance = forms.FileField(
        required=False, help_text="optional: predictor.feature_importance() saved as CSV, or JSON {feature: value}"
    )
    make_current = forms.BooleanField(
        required=False, initial=True, label="Make it the current version (warmed in every serving process first)"
    )


def _action_page(model_admin, request, queryset, *, action, title, summary, submit_label, form=None, moves=(),
                 can_submit=True):
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.model._meta,
        "queryset": queryset,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "summary": summary,
        "form": form,
        "moves": moves,
        "submit_label": submit_label,
        "can_submit": can_submit,
    }
    return TemplateResponse(request, "admin/predictions/registry_action.html", context)


@admin.register(ModelAlias)
class ModelAliasAdmin(ReadOnlyAdmin):
    """Aliases move through promotions only (the model's "Move an alias" action), never by editing a row, so
    every move is warmed first and recorded; rolling back is this page's action."""

    list_display = ["__str__", "model", "name", "version", "updated_by", "updated_at"]
    list_filter = ["model"]
    list_select_related = ["model", "version", "updated_by"]
    actions = ["rollback"]

    def has_promote_permission(self, request) -> bool:
        return request.user.has_perm(PROMOTE)

    @admin.action(permissions=["promote"], description="Roll back to the previous version…")
    def rollback(self, request, queryset):
        plans = [(alias, aliases.alias_rollback_target(model=alias.model, name=alias.name)) for alias in queryset]
        moves = [
            f"{alias}: v{alias.version.number} -> v{target.number}" if target
            else f"{alias}: never moved, nothing to roll back to"
            for alias, target in plans
        ]
        possible = [(alias, target) for alias, target in plans if target is not None]
        if request.POST.get("post") != "yes" or not possible:
            return _action_page(
                self, request, queryset, action="rollback", title="Roll back?", moves=moves,
                summary="Each alias moves back to the version it pointed at before its latest move, after that "
                "version has been warmed in every serving process.",
                submit_label="Yes, roll back", can_submit=bool(possible),
            )
        for alias, target in possible:
            requested = promotion.promotion_request(
                model=alias.model, version=target, alias_name=alias.name, user=request.user, rollback=True
            )
            promotion.promotion_start(promotion=requested)
            self.message_user(request, f"Rolling {alias} back to v{target.number}: warming first.")
        return HttpResponseRedirect(reverse("admin:predictions_promotion_changelist"))


@admin.register(Promotion)
class PromotionAdmin(ReadOnlyAdmin):
    """Every move of an alias or current version: who, when, from and to, and each serving process's warm-up."""

    list_display = ["created_at", "model", "alias", "from_to", "rollback", "status", "warmed", "requested_by",
                    "finished_at"]
    list_filter = ["status", "rollback", "model"]
    list_select_related = ["model", "from_version", "to_version", "requested_by"]
    fields = ["model", "alias", "from_to", "rollback", "status", "reason", "requested_by", "created_at",
              "finished_at", "progress"]
    readonly_fields = fields

    @admin.display(description="alias")
    def alias(self, move):
        return move.alias_name or aliases.CURRENT

    @admin.display(description="move")
    def from_to(self, move):
        before = f"v{move.from_version.number}" if move.from_version else "(none)"
        return f"{before} -> v{move.to_version.number}"

    @admin.display(description="warmed")
    def warmed(self, move):
        progress = promotion.promotion_progress(promotion=move)
        return f"{progress['done']}/{progress['total']}"

    @admin.display(description="serving processes")
    def progress(self, move):
        progress = promotion.promotion_progress(promotion=move)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r["process"], r["state"], r["served_from"], "" if r["seconds"] is None else f"{r['seconds']} s",
              r["error"]) for r in progress["processes"]),
        )
        return format_html(
            '<p>{} of {} warm</p><table id="promotion-progress"><thead><tr><th>process</th><th>state</th>'
            "<th>found in</th><th>took</th><th>error</th></tr></thead><tbody>{}</tbody></table>",
            progress["done"], progress["total"], rows,
        )


@admin.register(PredictionLog)
class PredictionLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "version", "user", "channel", "rows", "served_from", "fetch_ms", "load_ms",
                    "predict_ms", "total_ms", "node"]
    list_filter = ["served_from", "channel", "node"]
    search_fields = ["version__model__name", "user__username"]
    list_select_related = ["version__model", "user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
