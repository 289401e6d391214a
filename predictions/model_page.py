"""What the model page shows beside the prediction forms: versions, aliases, the leaderboard, importance, what
training looked like, a schema diff and snippets to call it. Reads only (a selector module)."""

import json

from django.conf import settings
from django.urls import reverse

from predictions import aliases
from predictions.models import MLModel, ModelVersion


def model_page_context(*, model: MLModel, version: ModelVersion, request) -> dict:
    versions = list(model.versions.select_related("artifact", "published_by").order_by("-number"))
    alias_rows = list(model.aliases.select_related("version", "updated_by").order_by("name"))
    by_version: dict[int, list[str]] = {}
    for alias in alias_rows:
        by_version.setdefault(alias.version_id, []).append(alias.name)
    previous = next((v for v in versions if v.number < version.number), None)
    return {
        "versions": [
            {"version": v, "score": best_score(v), "aliases": by_version.get(v.pk, []),
             "current": v.pk == model.current_version_id, "profile": v.serving_profile}
            for v in versions
        ],
        "alias_rows": alias_rows,
        "alias_moves": list(aliases.alias_history(model=model)[:10]),
        "leaderboard": version.leaderboard,
        "importance": importance_rows(version),
        "training": training_rows(version),
        "training_rows_count": (version.input_contract or {}).get("rows"),
        "training_source": (version.input_contract or {}).get("source", ""),
        "diff": schema_diff(old=previous, new=version) if previous else None,
        "diff_against": previous,
        "snippets": snippets(model=model, version=version, request=request),
        # Past these a CSV is refused inline: the page offers to run it as a batch job instead.
        "inline_max_bytes": settings.PREDICT_MAX_UPLOAD_BYTES,
        "inline_max_rows": settings.PREDICT_MAX_ROWS,
    }


def best_score(version: ModelVersion) -> float | None:
    """The validation score of the model AutoGluon predicts with (higher is better, as AutoGluon reports it)."""
    best = next((row for row in version.leaderboard if row.get("best")), None)
    return best.get("score_val") if best else None


def importance_rows(version: ModelVersion) -> list[dict]:
    features = (version.feature_importance or {}).get("features") or []
    top = max((abs(row["importance"]) for row in features), default=0) or 1.0
    return [{**row, "pct": 100.0 * abs(row["importance"]) / top} for row in features]


def training_rows(version: ModelVersion) -> list[dict]:
    described = (version.input_contract or {}).get("features") or {}
    rows = []
    for feature in version.features:
        seen = described.get(feature["name"], {})
        rows.append(
            {
                "name": feature["name"],
                "dtype": feature["dtype"],
                "min": seen.get("min"),
                "max": seen.get("max"),
                "missing_pct": None if seen.get("missing_rate") is None else 100.0 * seen["missing_rate"],
                "categories": feature.get("categories") or [],
            }
        )
    return rows


def schema_diff(*, old: ModelVersion, new: ModelVersion) -> dict:
    """What a client of ``old`` must know about ``new``: features added, removed or retyped, categories gained
    or lost, and a changed label, problem type or classes."""
    before = {f["name"]: f for f in old.features}
    after = {f["name"]: f for f in new.features}
    changed = []
    for name in [n for n in after if n in before]:
        was, now = before[name], after[name]
        notes = []
        if was["dtype"] != now["dtype"]:
            notes.append(f"type {was['dtype']} -> {now['dtype']}")
        gained = [c for c in now.get("categories") or [] if c not in (was.get("categories") or [])]
        lost = [c for c in was.get("categories") or [] if c not in (now.get("categories") or [])]
        if gained:
            notes.append("new categories: " + ", ".join(map(str, gained)))
        if lost:
            notes.append("categories no longer known: " + ", ".join(map(str, lost)))
        if notes:
            changed.append({"name": name, "notes": notes})
    target = [
        f"{what}: {a} -> {b}"
        for what, a, b in (
            ("label", old.label, new.label),
            ("problem type", old.problem_type, new.problem_type),
            ("classes", old.class_labels, new.class_labels),
        )
        if a != b
    ]
    diff = {
        "added": [n for n in after if n not in before],
        "removed": [n for n in before if n not in after],
        "changed": changed,
        "target": target,
    }
    diff["same"] = not any(diff.values())
    return diff


def snippets(*, model: MLModel, version: ModelVersion, request) -> dict:
    url = request.build_absolute_uri(reverse("api:model-predict", kwargs={"model_ref": model.name}))
    example = {f["name"]: _example_value(f) for f in version.features}
    body = json.dumps({"features": example})
    curl = (
        f"curl -s -X POST '{url}' \\\n"
        f'  -H "Authorization: Bearer $PORTAL_TOKEN" -H "Content-Type: application/json" \\\n'
        f"  -d '{body}'"
    )
    python = (
        "import os, requests\n\n"
        f"response = requests.post(\n    {url!r},\n"
        '    headers={"Authorization": f"Bearer {os.environ[\'PORTAL_TOKEN\']}"},\n'
        f"    json={{\"features\": {example!r}}},\n    timeout=30,\n)\n"
        "response.raise_for_status()\n"
        'print(response.json()["prediction"])'
    )
    return {"curl": curl, "python": python, "url": url}


def _example_value(feature: dict):
    if feature.get("categories"):
        return feature["categories"][0]
    return {"int": 1, "float": 1.0}.get(feature["dtype"], "")
