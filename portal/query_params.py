"""Query parameters checked strictly: on an endpoint that deletes, a typo must not widen what it acts on."""

from rest_framework import serializers
from rest_framework.settings import api_settings


def query_params_validate(serializer_class: type[serializers.Serializer], query_params) -> dict:
    """The validated parameters; a 400 naming each unknown, blank or repeated one.

    DRF reads a blank optional query parameter as absent (``?model_id=`` is no model_id at all) and ignores
    unknown ones (``?modelid=1``): on ``DELETE /api/models/cache`` both meant "clear every model".
    """
    fields = serializer_class().fields
    # DRF's own ``?format=json`` picks the renderer before the view runs.
    allowed = set(fields) | {api_settings.URL_FORMAT_OVERRIDE}
    errors = {}
    for name in query_params:
        values = query_params.getlist(name)
        if name not in allowed:
            takes = ", ".join(sorted(fields)) or "no parameters"
            errors[name] = [f"unknown query parameter; this endpoint takes {takes}"]
        elif any(not value.strip() for value in values):
            errors[name] = ["may not be blank: leave the parameter out instead"]
        elif len(values) > 1:
            errors[name] = ["given more than once"]
    if errors:
        raise serializers.ValidationError(errors)
    serializer = serializer_class(data=query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
