"""Web forms: they check the *shape* of what a person typed; ``predictions.inputs`` checks the values.

The feature form is built per model version from its recorded schema, so a new model needs no code.
"""

from django import forms
from django.core.exceptions import ValidationError

from predictions.inputs import InvalidInput, number_from_text

NUMERIC_DTYPES = {"int", "float"}


class NumberField(forms.Field):
    """A number as typed. NaN and infinity are let through on purpose: ``inputs`` rejects them with the
    same message the API gives, instead of Django's vaguer "Enter a number."."""

    default_error_messages = {"invalid": "Enter a number."}

    def __init__(self, *, integer: bool = False, **kwargs):
        self.integer = integer
        kwargs.setdefault(
            "widget", forms.NumberInput(attrs={"step": "any", "inputmode": "numeric" if integer else "decimal"})
        )
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        number = number_from_text(str(value), integer=self.integer)
        if number is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        if self.integer and isinstance(number, float) and number.is_integer():
            return int(number)
        return number


class FeatureForm(forms.Form):
    """Base of the generated forms; ``fields`` are added by :func:`feature_form_class`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Shown beside each field after a prediction: what the model noticed, and what it filled in.
        self.input_warnings: dict[str, list[str]] = {}
        self.filled_in: set[str] = set()

    def add_input_warnings(self, rows) -> None:
        """Attach the warnings and missing features of the one row predicted (``inputs.Rows``)."""
        for warning in rows.warnings:
            self.input_warnings.setdefault(warning["field"], []).append(warning["message"])
        self.filled_in = set(rows.missing[0])

    def annotated(self):
        """Each bound field with its warnings and whether the model filled it in, for the template."""
        for bound in self:
            yield bound, self.input_warnings.get(bound.name, []), bound.name in self.filled_in

    def row(self) -> dict:
        """The cleaned values as the row dict ``inputs.rows_from_json`` takes; a blank field is a missing value
        (None), which the predictor imputes as it did in training, as the API allows."""
        return {name: _blank_is_missing(self.cleaned_data.get(name)) for name in self.fields}

    def add_input_errors(self, error: InvalidInput, *, where: str = "features") -> None:
        """Attach ``inputs`` errors ("features.sqft": "...") to their fields; others to the whole form."""
        for key, message in error.errors.items():
            name = key[len(where) + 1 :] if key.startswith(f"{where}.") else None
            if name in self.fields:
                self.add_error(name, message)
            else:
                self.add_error(None, f"{key}: {message}")


def _blank_is_missing(value):
    return None if value == "" else value


def _bool_coerce(value):
    return value in (True, "true", "True", "1")


def feature_field(feature: dict) -> forms.Field:
    name, dtype = feature["name"], feature.get("dtype", "object")
    common = {"label": name, "required": False}
    categories = feature.get("categories")
    if dtype in NUMERIC_DTYPES:
        return NumberField(integer=dtype == "int", help_text="integer" if dtype == "int" else "number", **common)
    if dtype == "bool":
        return forms.TypedChoiceField(
            choices=[("", "choose…"), ("true", "true"), ("false", "false")],
            coerce=_bool_coerce,
            empty_value=None,
            help_text="true or false",
            **common,
        )
    if categories:
        choices = [("", "choose…")] + [(str(c), str(c)) for c in categories]
        return forms.ChoiceField(
            choices=choices, help_text=f"one of {len(categories)} categories seen in training", **common
        )
    if dtype == "datetime":
        return forms.CharField(
            widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
            help_text="date and time",
            **common,
        )
    return forms.CharField(max_length=1000, help_text="text", **common)


def feature_form_class(version) -> type[FeatureForm]:
    """A form class with one field per feature of ``version``, in the predictor's column order."""
    fields = {feature["name"]: feature_field(feature) for feature in version.features}
    return type(f"FeatureForm_{version.pk}", (FeatureForm,), fields)


class CSVUploadForm(forms.Form):
    # Empty files are let through: ``inputs.rows_from_csv`` says "file: is empty", as the API does.
    file = forms.FileField(
        label="CSV file",
        allow_empty_file=True,
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )

    def add_input_errors(self, error: InvalidInput) -> None:
        """``file`` errors go to the field; row and header errors ("row 3, column sqft") to the form."""
        for key, message in error.errors.items():
            if key == "file":
                self.add_error("file", message)
            else:
                self.add_error(None, f"{key}: {message}")
