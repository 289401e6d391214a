"""The limits form of the admin: sizes in units people type ("10 GB", "512 MiB"), values checked for sense."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from cache_app.models import CacheLimits

# KB/MB/GB/TB are powers of 1000 and KiB/MiB/GiB/TiB powers of 1024, as disks and RAM are sold and shown.
UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}
SIZE = re.compile(r"\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-z]*)\s*", re.IGNORECASE)
# Smaller than this, no model fits: a typo ("10" meaning 10 GB) rather than a wish.
MIN_BYTES = 1024**2


UNIT_NAMES = ["KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"]


def size_text(value: int) -> str:
    """``10737418240`` -> ``"10 GiB"``, ``10**10`` -> ``"10 GB"``: the largest unit that says it exactly."""
    exact = [name for name in UNIT_NAMES if value and value % UNITS[name.lower()] == 0]
    if not exact:
        return f"{value} B"
    unit = max(exact, key=lambda name: UNITS[name.lower()])
    return f"{value // UNITS[unit.lower()]} {unit}"


class ByteSizeField(forms.CharField):
    """Bytes, typed as ``10 GB``, ``1.5 TiB``, ``512MiB`` or a plain number of bytes."""

    def __init__(self, *, min_bytes: int = MIN_BYTES, **kwargs):
        self.min_bytes = min_bytes
        kwargs.setdefault("help_text", "e.g. 10 GB, 512 MiB, 1.5 TiB (KB/MB/GB: powers of 1000; KiB/MiB/GiB: 1024)")
        super().__init__(**kwargs)

    def prepare_value(self, value):
        return size_text(value) if isinstance(value, int) else value

    def to_python(self, value):
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        match = SIZE.fullmatch(text)
        unit = match["unit"].lower() if match else None
        if match is None or unit not in UNITS:
            raise ValidationError(
                f"{text!r} is not a size: write a number and a unit, e.g. 10 GB or 512 MiB", code="invalid"
            )
        size = int(float(match["number"]) * UNITS[unit])
        if size < self.min_bytes:
            raise ValidationError(f"{text} is below the minimum of {filesizeformat(self.min_bytes)}", code="min_value")
        return size


class CacheLimitsForm(forms.ModelForm):
    disk_max_bytes = ByteSizeField(label="Disk limit")
    memory_max_bytes = ByteSizeField(label="Memory limit (per process)")
    memory_max_count = forms.IntegerField(label="Models in memory (per process)", min_value=1, max_value=10_000)
    hit_rate_warning = forms.FloatField(
        label="Hit-rate warning",
        min_value=0.0,
        max_value=1.0,
        help_text="The dashboard warns under this hit rate: a fraction between 0 and 1 (0.5 = 50%).",
    )

    class Meta:
        model = CacheLimits
        fields = ["disk_max_bytes", "memory_max_bytes", "memory_max_count", "hit_rate_warning"]

    def change_summary(self) -> str:
        """What this edit changed, old -> new, for the admin's History."""
        sizes = {"disk_max_bytes", "memory_max_bytes"}
        parts = []
        for name in self.changed_data:
            old, new = self.initial.get(name), self.cleaned_data.get(name)
            if name in sizes:
                old, new = size_text(old) if isinstance(old, int) else old, size_text(new)
            parts.append(f"{self.fields[name].label}: {old} -> {new}")
        return "limits: " + ("; ".join(parts) if parts else "saved unchanged")
