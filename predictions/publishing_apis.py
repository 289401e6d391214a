"""``POST /api/models/<name>/versions``: publish a new version from a multipart archive upload."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions import publishing
from predictions.alias_apis import PromotionOutputSerializer


class CanPublish(BasePermission):
    def has_permission(self, request, view):
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("predictions.publish_model"))


class PublishedOutputSerializer(serializers.Serializer):
    model = serializers.CharField(source="version.model.name")
    model_id = serializers.IntegerField(source="version.model_id")
    version = serializers.IntegerField(source="version.number")
    created = serializers.BooleanField()
    current = serializers.BooleanField()
    sha256 = serializers.CharField(source="version.artifact.sha256")
    size_bytes = serializers.IntegerField(source="version.artifact.size_bytes")
    problem_type = serializers.CharField(source="version.problem_type")
    features = serializers.JSONField(source="version.features")
    promotion = PromotionOutputSerializer(allow_null=True)


class VersionPublishApi(APIView):
    """The archive (zip, tar.gz or tar of a ``TabularPredictor`` folder) in the ``archive`` field; optionally
    ``feature_importance`` (CSV or JSON) and ``current`` (default true: once warmed everywhere, it becomes the
    current version). 201 for a new version; 200 with the existing one for an archive published before."""

    permission_classes = [CanPublish]
    parser_classes = [MultiPartParser]
    max_body_setting = "MODEL_PUBLISH_MAX_UPLOAD_BYTES"  # portal.middleware.BodySizeLimitMiddleware

    @extend_schema_serializer(component_name="VersionPublishInput")  # each API's "Input" its own schema
    class InputSerializer(serializers.Serializer):
        archive = serializers.FileField(allow_empty_file=False)
        feature_importance = serializers.FileField(required=False, allow_empty_file=False)
        current = serializers.BooleanField(required=False, default=True)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={200: PublishedOutputSerializer, 201: PublishedOutputSerializer, 400: dict, 403: dict, 503: dict},
    )
    def post(self, request, model_name):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            published = publishing.version_publish_upload(
                name=model_name,
                upload=data.validated_data["archive"],
                importance_upload=data.validated_data.get("feature_importance"),
                make_current=data.validated_data["current"],
                user=request.user,
                via="api",
            )
        except publishing.InvalidUpload as error:
            raise ValidationError({error.field: [str(error)]}) from None
        body = PublishedOutputSerializer(published).data
        return Response(body, status=status.HTTP_201_CREATED if published.created else status.HTTP_200_OK)
