"""The cache in the Django admin: what is cached where, and the staff actions that change it.

Every action calls the same services as the API and the management commands (``services.maintenance``),
is offered only to staff holding ``cache_app.manage_cache``, says what it did with ``message_user`` and is
recorded (who, when, what) by ``services.audit``: *Log entries* and each artifact's History show them.
Clears ask for confirmation first.
``CacheActionsMixin`` is shared with ``predictions.admin``: a ModelAdmin says how its rows map to
artifacts (``cache_artifacts_of``) and how to name one (``cache_label``), and gets the same actions.
"""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import LogEntry
from django.db.models import QuerySet
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse

from cache_app.models import Artifact, CacheEntry, CacheLimits, FetchRecord, TierCounter
from cache_app.forms import CacheLimitsForm
from cache_app.services import maintenance
from cache_app.services.audit import cache_action_record, verified_summary
from cache_app.services.limits import limits_current, limits_reset
from cache_app.services.serving import WARM_ERRORS, WARM_SOURCES, artifact_warm

MANAGE_CACHE = "cache_app.manage_cache"
# What a warm can fail with that staff should read as a message rather than a server error.



class CacheActionsMixin:
    """Clear, warm, verify, pin and unpin for any ModelAdmin whose rows map to artifacts."""

    actions = [
        "clear_cache",
        "clear_cache_including_shared",
        "warm_cache",
        "verify_checksums",
        "pin_artifacts",
        "unpin_artifacts",
    ]

    def cache_artifacts_of(self, queryset: QuerySet) -> list[tuple[str, Artifact]]:
        """(label, artifact) for every artifact the selected rows stand for."""
        raise NotImplementedError

    def cache_current_artifacts_of(self, queryset: QuerySet) -> list[tuple[str, Artifact]]:
        """What warm and pin act on: by default the same; a model narrows it to its current version."""
        return self.cache_artifacts_of(queryset)

    def has_manage_cache_permission(self, request) -> bool:
        return request.user.has_perm(MANAGE_CACHE)

    @admin.action(permissions=["manage_cache"], description="Clear the cache (memory and this node's disk)")
    def clear_cache(self, request, queryset):
        return self._clear(request, queryset, action="clear_cache", include_shared=False)

    @admin.action(permissions=["manage_cache"], description="Clear the cache, shared tier included")
    def clear_cache_including_shared(self, request, queryset):
        return self._clear(request, queryset, action="clear_cache_including_shared", include_shared=True)

    def _clear(self, request, queryset, *, action: str, include_shared: bool):
        targets = self.cache_artifacts_of(queryset)
        # A clear costs every node a download (fleet-wide with the shared tier): the first post only shows
        # what would go; the confirmation page posts again with "post=yes", as the admin's own delete does.
        if request.POST.get("post") != "yes":
            return self._clear_confirmation(request, queryset, targets, action=action, include_shared=include_shared)
        for label, artifact in targets:
            cleared = maintenance.artifact_clear(artifact=artifact, include_shared=include_shared)
            shared = " and the shared copy" if cleared.shared_deleted else ""
            message = (
                f"{cleared.memory_dropped} dropped from memory, "
                f"{filesizeformat(cleared.disk_bytes_freed)} freed on disk{shared}; "
                f"now generation {cleared.generation}, so other nodes drop their copies too."
            )
            cache_action_record(
                user=request.user,
                action="clear, shared tier included" if include_shared else "clear",
                message=message,
                obj=artifact,
                label=label,
            )
            self.message_user(request, f"Cleared {label}: {message}", messages.SUCCESS)
        return None

    def _clear_confirmation(self, request, queryset, targets, *, action: str, include_shared: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": "Clear the shared tier too?" if include_shared else "Clear the cache?",
            "opts": self.model._meta,
            "queryset": queryset,
            "targets": [label for label, _ in targets],
            "action": action,
            "include_shared": include_shared,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/cache_app/clear_confirmation.html", context)

    @admin.action(permissions=["manage_cache"], description="Warm (onto this node's disk, loaded once)")
    def warm_cache(self, request, queryset):
        for label, artifact in self.cache_current_artifacts_of(queryset):
            try:
                served = artifact_warm(artifact=artifact)
            except WARM_ERRORS as error:
                cache_action_record(user=request.user, action="warm", message=f"failed: {error}", obj=artifact,
                                    label=label)
                self.message_user(request, f"Could not warm {label}: {error}", messages.ERROR)
                continue
            source = WARM_SOURCES.get(served.tier, f"fetched from {served.tier}")
            seconds = served.fetch_seconds + served.load_seconds
            cache_action_record(user=request.user, action="warm", message=f"{source} in {seconds:.2f} s",
                                obj=artifact, label=label)
            self.message_user(request, f"Warmed {label}: {source} in {seconds:.2f} s.", messages.SUCCESS)

    @admin.action(permissions=["manage_cache"], description="Verify checksums of the disk copies")
    def verify_checksums(self, request, queryset):
        for label, artifact in self.cache_artifacts_of(queryset):
            verified = maintenance.artifact_verify(artifact=artifact)
            cache_action_record(user=request.user, action="verify", message=verified_summary(verified),
                                obj=artifact, label=label)
            if not verified.checked:
                self.message_user(request, f"{label}: no disk copy on this node to verify.", messages.INFO)
            elif verified.ok:
                self.message_user(request, f"{label}: disk copy verified, every file matches.", messages.SUCCESS)
            else:
                self.message_user(
                    request,
                    f"{label}: disk copy CORRUPT and removed ({len(verified.problems)} problems: "
                    f"{'; '.join(verified.problems[:10])}). The next use fetches it again.",
                    messages.ERROR,
                )

    @admin.action(permissions=["manage_cache"], description="Pin (never evict from disk)")
    def pin_artifacts(self, request, queryset):
        self._pin(request, queryset, pinned=True)

    @admin.action(permissions=["manage_cache"], description="Unpin")
    def unpin_artifacts(self, request, queryset):
        self._pin(request, queryset, pinned=False)

    def _pin(self, request, queryset, *, pinned: bool) -> None:
        labels = []
        chosen = self.cache_current_artifacts_of if pinned else self.cache_artifacts_of
        for label, artifact in chosen(queryset):
            maintenance.artifact_pin(artifact=artifact, pinned=pinned)
            cache_action_record(user=request.user, action="pin" if pinned else "unpin",
                                message="kept on disk" if pinned else "evictable again", obj=artifact, label=label)
            labels.append(label)
        self.message_user(
            request, f"{'Pinned' if pinned else 'Unpinned'} {len(labels)}: {', '.join(labels)}.", messages.SUCCESS
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records the cache writes itself: staff look, they never add, edit or delete rows by hand."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Artifact)
class ArtifactAdmin(CacheActionsMixin, ReadOnlyAdmin):
    list_display = ["id", "name", "format", "archive_size", "unpacked_size", "generation", "pinned", "short_sha"]
    list_filter = ["pinned", "format"]
    search_fields = ["source_uri", "sha256"]
    ordering = ["-id"]

    def cache_artifacts_of(self, queryset):
        return [(str(a), a) for a in queryset]

    @admin.display(description="name")
    def name(self, artifact):
        return str(artifact)

    @admin.display(description="archive", ordering="size_bytes")
    def archive_size(self, artifact):
        return filesizeformat(artifact.size_bytes or 0)

    @admin.display(description="unpacked", ordering="unpacked_bytes")
    def unpacked_size(self, artifact):
        return filesizeformat(artifact.unpacked_bytes or 0)

    @admin.display(description="sha256")
    def short_sha(self, artifact):
        return (artifact.sha256 or "")[:16]


@admin.register(CacheEntry)
class CacheEntryAdmin(ReadOnlyAdmin):
    list_display = ["artifact", "node", "tier", "state", "generation", "size", "hit_count", "last_accessed_at",
                    "verified_at"]
    list_filter = ["node", "tier", "state"]
    search_fields = ["location", "node", "artifact__source_uri", "artifact__sha256"]
    list_select_related = ["artifact"]
    ordering = ["-last_accessed_at"]

    @admin.display(description="size", ordering="size_bytes")
    def size(self, entry):
        return filesizeformat(entry.size_bytes)


@admin.register(FetchRecord)
class FetchRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "artifact", "node", "tier", "size", "seconds", "error"]
    list_filter = ["tier", "node"]
    search_fields = ["artifact__source_uri", "error", "node"]
    list_select_related = ["artifact"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]

    @admin.display(description="size", ordering="size_bytes")
    def size(self, record):
        return filesizeformat(record.size_bytes)


@admin.register(TierCounter)
class TierCounterAdmin(ReadOnlyAdmin):
    list_display = ["bucket_start", "node", "tier", "hits", "misses", "errors", "bytes_transferred", "fetch_seconds"]
    list_filter = ["tier", "node"]
    date_hierarchy = "bucket_start"
    ordering = ["-bucket_start"]


@admin.register(CacheLimits)
class CacheLimitsAdmin(admin.ModelAdmin):
    """One row. Saving resets this process's cached copy, so the new limits apply here at once and on
    every other node within ``limits.REFRESH_SECONDS``."""

    form = CacheLimitsForm
    list_display = ["__str__", "disk_max", "memory_max", "memory_max_count", "hit_rate_warning", "updated_at"]
    readonly_fields = ["updated_at"]

    def changelist_view(self, request, extra_context=None):
        limits_current()  # makes the row from the settings' defaults if there is none yet
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request):
        return super().has_add_permission(request) and not CacheLimits.objects.exists()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        limits_reset()

    def construct_change_message(self, request, form, formsets, add=False):
        # The admin records who saved and when; this makes the History say what changed, in units people read.
        return form.change_summary() if not add else super().construct_change_message(request, form, formsets, add)

    @admin.display(description="disk max", ordering="disk_max_bytes")
    def disk_max(self, limits):
        return filesizeformat(limits.disk_max_bytes)

    @admin.display(description="memory max", ordering="memory_max_bytes")
    def memory_max(self, limits):
        return filesizeformat(limits.memory_max_bytes)


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    """Every staff change, cache actions and limit edits included: who, when, on what, and what happened."""

    list_display = ["action_time", "user", "content_type", "object_repr", "action_flag", "change_message"]
    list_filter = ["action_flag", "content_type", "user"]
    search_fields = ["object_repr", "change_message", "user__username"]
    list_select_related = ["user", "content_type"]
    date_hierarchy = "action_time"
    ordering = ["-action_time"]
