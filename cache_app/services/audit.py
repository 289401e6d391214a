"""Who did what to the cache, and when: clear, warm, verify, pin and limit changes, from the admin or the API.

Recorded as the admin's own ``LogEntry`` rows, so they show in each artifact's History, in the admin's
recent actions and in the *Log entries* list, beside every other staff change.
"""

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models

REPR_LENGTH = 200  # LogEntry.object_repr's max_length


def cache_action_record(*, user, action: str, message: str, obj: models.Model | None = None, label: str = "") -> None:
    """Record ``action`` ("clear", "warm", ...) by ``user`` on ``obj`` (None: every cached model).

    Anonymous and missing users are not recorded: every path that changes the cache requires a staff login,
    so there is always someone to name.
    """
    if user is None or not user.is_authenticated:
        return
    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False) if obj is not None else None,
        object_id=str(obj.pk) if obj is not None else None,
        object_repr=(label or (str(obj) if obj is not None else "every cached model"))[:REPR_LENGTH],
        action_flag=CHANGE,
        change_message=f"{action}: {message}",
    )


def verified_summary(verified) -> str:
    """One line for the record of a verify (``maintenance.Verified``)."""
    if not verified.checked:
        return "no disk copy on this node"
    if verified.ok:
        return "every file matches"
    return f"CORRUPT, copy removed ({len(verified.problems)} problems)"
