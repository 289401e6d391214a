"""One result row: ours, the comparison, their ratio, the target and whether it is met."""


def row(name, ours, comparison, comparison_name, unit, *, target=None, met=None, reps=None, details=None,
        note=None) -> dict:
    ratio = round(ours / comparison, 4) if (ours is not None and comparison) else None
    return {
        "row": name,
        "ours": ours,
        "comparison": comparison,
        "comparison_name": comparison_name,
        "unit": unit,
        "ratio": ratio,  # always ours / comparison
        "target": target,
        "met": met,
        "reps": reps,
        "details": details or {},
        "note": note,
    }


def not_measured(name, reason, target=None) -> dict:
    return {"row": name, "ours": None, "comparison": None, "comparison_name": "", "unit": "", "ratio": None,
            "target": target, "met": None, "reps": 0, "details": {}, "note": f"not measured: {reason}"}
