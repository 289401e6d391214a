"""The prediction API. Thin views: parse, call ``predictions.services``, shape the answer."""

import json
import time

from django.conf import settings

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions import inputs, results, selectors, services


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "body_too_large"


def _body_read(stream, *, limit: int) -> bytes:
    """The body, refused with a 413 as soon as it passes ``limit`` bytes: never more than that in memory."""
    if stream is None:
        return b""
    chunks, size = [], 0
    while chunk := stream.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the body is larger than {limit} bytes, the limit per request (PREDICT_MAX_UPLOAD_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


class CSVBodyParser(BaseParser):
    media_type = "text/csv"

    def parse(self, stream, media_type=None, parser_context=None):
        return _body_read(stream, limit=settings.PREDICT_MAX_UPLOAD_BYTES)


class FeatureJSONParser(JSONParser):
    """JSON that cannot knock the server over: bounded while read, any depth or number refused with a 400.

    NaN and Infinity literals are parsed so validation can name the field that holds them (then refuse it).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        body = _body_read(stream, limit=settings.PREDICT_MAX_UPLOAD_BYTES)
        try:
            return json.loads(body.decode("utf-8"))
        except UnicodeDecodeError as error:
            raise ParseError(f"the body is not UTF-8 text (byte {error.start})") from None
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        except ValueError as error:  # syntax, and integers past Python's digit limit
            raise ParseError(f"JSON parse error - {str(error)[:200]}") from None


class CSVRenderer(BaseRenderer):
    """Result rows as CSV (``Accept: text/csv`` or ``?format=csv``); errors as field,error rows."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, dict) and "header" in data and "rows" in data:
            return results.csv_text(data["header"], data["rows"]).encode(self.charset)
        errors = (data or {}).get("errors") or {"detail": (data or {}).get("detail", "")}
        return results.csv_text(["field", "error"], list(errors.items())).encode(self.charset)


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

        def validate(self, data):
            if "version" in data and "alias" in data:
                raise serializers.ValidationError({"alias": "give a version or an alias, not both"})
            return data

    @extend_schema(
        request={"application/json": dict, "text/csv": str, "multipart/form-data": dict},
        parameters=[
            OpenApiParameter("version", int, description="A version number; default: the current one"),
            OpenApiParameter("alias", str, description="An alias (production, staging...) instead of a version"),
        ],
        responses={200: dict, 400: dict, 404: dict, 503: dict},
        description="Predict one row, many rows or a CSV file with the model's current (or given) version.",
    )
    def post(self, request, model_ref):
        started = time.monotonic()
        params = self._query(request)
        model = selectors.model_get(model_ref=model_ref)
        if "alias" in params:
            version = selectors.alias_version_get(model=model, name=params["alias"])
        else:
            version = selectors.version_get(model=model, number=params.get("version"))
        rows, single = self._rows(request, version)
        result = services.prediction_run(version=version, frame=rows.features, user=request.user, started=started)
        if request.accepted_renderer.format == "csv":
            header, table = results.result_table(rows, result)
            return Response({"header": header, "rows": table})
        return Response(_result_body(rows, result, single=single))

    def _query(self, request) -> dict:
        # Most predictions name no version: building a serializer for nothing is a fair share of such a
        # request's own cost.
        if not request.query_params:
            return {}
        query = self.QuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def _rows(self, request, version) -> tuple[inputs.Rows, bool]:
        if request.content_type.startswith("text/csv"):
            # DRF skips the parser for an empty body and hands back an empty dict.
            body = request.data if isinstance(request.data, bytes) else b""
            return inputs.rows_from_csv(version=version, data=body), False
        if "file" in request.FILES:
            return inputs.rows_from_csv(version=version, data=request.FILES["file"].read()), False
        data = request.data
        if not isinstance(data, dict) or not data:
            raise ParseError("send a JSON object: {\"features\": {...}}, {\"instances\": [...]} or a CSV file")
        if "instances" in data:
            return inputs.rows_from_json(version=version, rows=data["instances"]), False
        features = data.get("features", data)
        if not isinstance(features, dict):
            raise inputs.InvalidInput({"features": "must be an object of feature values"})
        return inputs.rows_from_json(version=version, rows=[features], where="features"), True


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
