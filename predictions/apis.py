"""The prediction API. Thin views: parse, call ``predictions.services``, shape the answer."""

import time

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ParseError, UnsupportedMediaType
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import parsers
from portal.query_params import query_params_validate
from predictions import aliases, inputs, results, selectors, services


class CSVBodyParser(BaseParser):
    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return parsers.body_read(stream, limit=parsers.body_limit())


class FeatureJSONParser(parsers.JSONParser):
    """NaN and Infinity literals are parsed so validation can name the field that holds them (then refuse it)."""

    strict = False


class CSVRenderer(BaseRenderer):
    """Result rows as CSV (``Accept: text/csv`` or ``?format=csv``); errors as field,error rows."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "header" in data and "rows" in data:
            text = results.csv_text(data["header"], data["rows"])
        else:
            errors = (data or {}).get("errors") or {"detail": (data or {}).get("detail", "")}
            text = results.csv_text(["field", "error"], list(errors.items()))
        # Text that is not valid Unicode (a lone surrogate) is written as its escape rather than not at all.
        return text.encode(self.charset, "backslashreplace")


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    problem_type = serializers.CharField()
    label = serializers.CharField()
    eval_metric = serializers.CharField()
    features = serializers.JSONField()
    class_labels = serializers.JSONField()
    autogluon_version = serializers.CharField()
    size_bytes = serializers.IntegerField(source="artifact.size_bytes")
    sha256 = serializers.CharField(source="artifact.sha256")
    created_at = serializers.DateTimeField()


class ModelOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    current_version = VersionSerializer()
    cached_in = serializers.SerializerMethodField()

    def get_cached_in(self, model) -> list[str]:
        if model.current_version is None:
            return []
        # A list page passes every model's tiers, read in one query; one model reads its own.
        known = self.context.get("tiers")
        if known is not None:
            return known[model.current_version.pk]
        return selectors.cache_tiers_of(version=model.current_version)


class ModelListApi(APIView):
    @extend_schema(responses=ModelOutputSerializer(many=True))
    def get(self, request):
        models = list(selectors.model_list())
        tiers = selectors.cache_tiers_by_version(versions=[m.current_version for m in models])
        return Response(ModelOutputSerializer(models, many=True, context={"tiers": tiers}).data)


class ModelDetailApi(APIView):
    @extend_schema(responses=ModelOutputSerializer)
    def get(self, request, model_ref):
        return Response(ModelOutputSerializer(selectors.model_get(model_ref=model_ref)).data)


class PredictApi(APIView):
    """One row (``{"features": {...}}`` or the flat object), many (``{"instances": [...]}``), or CSV."""

    parser_classes = [FeatureJSONParser, CSVBodyParser, MultiPartParser, FormParser]
    renderer_classes = [JSONRenderer, CSVRenderer]

    class QuerySerializer(serializers.Serializer):
        version = serializers.IntegerField(required=False, min_value=1)
        alias = serializers.SlugField(required=False, max_length=64)

        def validate_alias(self, name):
            try:
                aliases.alias_name_validate(name)
            except aliases.InvalidAlias as error:
                raise serializers.ValidationError(str(error)) from None
            return name

        def validate(self, data):
            if "version" in data and "alias" in data:
                raise serializers.ValidationError({"alias": "give a version or an alias, not both"})
            return data

    @extend_schema(
        request={"application/json": dict, "text/csv": str, "multipart/form-data": dict},
        parameters=[
            OpenApiParameter("version", int, description="A version number; default: the current one"),
            OpenApiParameter("alias", str, description="An alias (production, staging...) instead of a version; "
                             "current: the current version"),
            OpenApiParameter("format", str, enum=["json", "csv"], description="The answer's format; default: JSON"),
        ],
        responses={200: dict, 400: dict, 404: dict, 415: dict, 503: dict},
        description="Predict one row, many rows or a CSV file with the model's current (or given) version.",
    )
    def post(self, request, model_ref):
        started = time.monotonic()
        params = self._query(request)
        model = selectors.model_get(model_ref=model_ref)
        alias = params.get("alias", aliases.CURRENT)
        if alias == aliases.CURRENT:
            version = selectors.version_get(model=model, number=params.get("version"))
        else:
            version = selectors.alias_version_get(model=model, name=alias)
        rows, single = self._rows(request, version)
        result = services.prediction_run(version=version, frame=rows.features, user=request.user, started=started)
        if request.accepted_renderer.format == "csv":
            header, table = results.result_table(rows, result)
            return Response({"header": header, "rows": table})
        return Response(_result_body(rows, result, single=single))

    def _query(self, request) -> dict:
        """Unknown, blank and repeated parameters are refused: ``?alias=`` must not mean the current version."""
        # Most predictions name no version: building a serializer for nothing is a fair share of such a
        # request's own cost.
        if not request.query_params:
            return {}
        return query_params_validate(self.QuerySerializer, request.query_params)

    def _rows(self, request, version) -> tuple[inputs.Rows, bool]:
        if request.content_type.startswith("text/csv"):
            # DRF skips the parser for an empty body and hands back an empty dict.
            body = request.data if isinstance(request.data, bytes) else b""
            return inputs.rows_from_csv(version=version, data=body), False
        # Read before any refusal below, so Django's own limits on a form body answer as they do anywhere.
        data = request.data
        if request.content_type.startswith("multipart/form-data"):
            return inputs.rows_from_csv(version=version, data=_csv_upload(request).read()), False
        if request.content_type.startswith("application/x-www-form-urlencoded"):
            # Form fields are text, and a feature's value keeps its JSON type (1800 is a number, "1800" is not).
            takes = ", ".join(parser.media_type for parser in self.parser_classes if parser is not FormParser)
            raise UnsupportedMediaType(
                request.content_type, detail=f"a form body is not read here; send {takes} (a CSV in a `file` part)"
            )
        if not isinstance(data, dict) or not data:
            raise ParseError("send a JSON object: {\"features\": {...}}, {\"instances\": [...]} or a CSV file")
        for rows_key in ("instances", "features"):
            if rows_key in data:
                _unread_refused(
                    [name for name in data if name != rows_key],
                    why=f"is not read beside {rows_key}: send many rows in instances, or one in features",
                )
        if "instances" in data:
            return inputs.rows_from_json(version=version, rows=data["instances"]), False
        features = data.get("features", data)
        if not isinstance(features, dict):
            raise inputs.InvalidInput({"features": "must be an object of feature values"})
        return inputs.rows_from_json(version=version, rows=[features], where="features"), True


def _csv_upload(request):
    """The multipart body's one CSV ``file``: a second file, or any other part, would be ignored in silence."""
    _unread_refused([name for name in request.data if name != "file"], why="is not read: send the CSV as `file`")
    files = request.FILES.getlist("file")
    if len(files) != 1:
        raise inputs.InvalidInput({"file": f"send one CSV file in one `file` part (got {len(files)})"})
    return files[0]


def _unread_refused(names: list, *, why: str) -> None:
    if names:
        shown = {parsers.name_shown(name): why for name in names[: inputs.MAX_ERRORS]}
        raise inputs.InvalidInput(shown, omitted=max(0, len(names) - inputs.MAX_ERRORS))


def _result_body(rows: inputs.Rows, result: services.PredictionResult, *, single: bool) -> dict:
    body = {
        "model": result.version.model.name,
        "model_id": result.version.model_id,
        "version": result.version.number,
        "from_cache": result.from_cache,
        "uses_real_model": True,
        "served_from": result.served_from,
        "timings_ms": result.timings_ms,
    }
    if single:
        body["prediction"] = result.predictions[0]
        if result.probabilities is not None:
            body["probabilities"] = result.probabilities[0]
        body["missing_features"] = rows.missing[0]
    else:
        body["predictions"] = result.predictions
        if result.probabilities is not None:
            body["probabilities"] = result.probabilities
        body["missing_features"] = rows.missing
    body["warnings"] = rows.warnings
    if rows.warnings_omitted:
        body["warnings_omitted"] = rows.warnings_omitted
    return body
