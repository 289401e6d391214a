"""Aliases: named pointers per model (``production``, ``staging``...) that clients predict with (``?alias=``).

Every move goes through ``predictions.promotion`` (warm everywhere, then switch) and is recorded there with
who and when; a rollback is a move back to where the alias pointed before its latest switch.
"""

import re

from predictions import promotion
from predictions.models import MLModel, ModelAlias, ModelVersion, Promotion

ALIAS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
ALIAS_NAME_MAX_LENGTH = ModelAlias._meta.get_field("name").max_length
# ``current`` names the model's current version (``PUT .../aliases/current``, ``?alias=current``), never an
# alias; no spelling of it in other cases is an alias either (``alias_name_validate``).
CURRENT = "current"


class InvalidAlias(ValueError):
    pass


def alias_name_validate(name: str) -> None:
    """Refuse what is no alias name. ``current`` is valid: it names the current version.

    Alias names are case-sensitive, but ``CURRENT`` or ``Current`` are refused: as aliases they would sit
    beside the current version under what reads as its name, and a client who writes them means ``current``.
    """
    if not isinstance(name, str) or not ALIAS_NAME.fullmatch(name) or len(name) > ALIAS_NAME_MAX_LENGTH:
        raise InvalidAlias(
            f"invalid alias {name!r}: a slug of at most {ALIAS_NAME_MAX_LENGTH} letters, digits, '-' and '_'"
        )
    if name.lower() == CURRENT and name != CURRENT:
        raise InvalidAlias(f"{name!r} is reserved: write {CURRENT!r} (lower case) for the model's current version")


def alias_move(
    *, model: MLModel, version: ModelVersion, name: str, user=None, rollback: bool = False
) -> Promotion:
    """Point ``name`` (``current``: the current version) at ``version`` once every serving process has it warm.

    Synchronous: returns the finished promotion, ``switched`` or ``failed`` with the reason.
    """
    alias_name_validate(name)
    requested = promotion.promotion_request(
        model=model, version=version, alias_name="" if name == CURRENT else name, user=user, rollback=rollback
    )
    return promotion.promotion_run(promotion=requested)


def alias_rollback_target(*, model: MLModel, name: str) -> ModelVersion | None:
    """Where ``name`` (``current`` included) pointed before its latest switch; None if it never moved."""
    latest = (
        Promotion.objects.filter(
            model=model, alias_name="" if name == CURRENT else name, status=Promotion.Status.SWITCHED
        )
        .select_related("from_version__artifact", "from_version__model")
        .order_by("-finished_at", "-pk")
        .first()
    )
    return latest.from_version if latest is not None else None


def alias_history(*, model: MLModel):
    """Every switched move of the model's aliases and current version, newest first."""
    return (
        Promotion.objects.filter(model=model, status=Promotion.Status.SWITCHED)
        .select_related("from_version", "to_version", "requested_by")
        .order_by("-finished_at", "-pk")
    )
