"""Aliases over the API: list them, and move one (``current``: the current version) after a warm-up."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from predictions import aliases, promotion, selectors


class CanPromote(BasePermission):
    """Reading aliases: anyone signed in. Moving one: ``predictions.promote_model``."""

    def has_permission(self, request, view):
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in ("GET", "HEAD", "OPTIONS") or user.has_perm("predictions.promote_model")


class AliasOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField(source="version.number")
    updated_at = serializers.DateTimeField()
    updated_by = serializers.CharField(source="updated_by.get_username", default=None)


class PromotionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    alias = serializers.SerializerMethodField()
    status = serializers.CharField()
    reason = serializers.CharField()
    from_version = serializers.IntegerField(source="from_version.number", default=None)
    to_version = serializers.IntegerField(source="to_version.number")
    rollback = serializers.BooleanField()
    requested_by = serializers.CharField(source="requested_by.get_username", default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    progress = serializers.SerializerMethodField()

    def get_alias(self, move) -> str:
        return move.alias_name or aliases.CURRENT

    def get_progress(self, move) -> dict:
        return promotion.promotion_progress(promotion=move)


class AliasListApi(APIView):
    permission_classes = [CanPromote]

    @extend_schema(responses=dict)
    def get(self, request, model_ref):
        model = selectors.model_get(model_ref=model_ref)
        current = model.current_version.number if model.current_version else None
        listed = model.aliases.select_related("version", "updated_by").order_by("name")
        history = aliases.alias_history(model=model)[:50]
        return Response(
            {
                "current_version": current,
                "aliases": AliasOutputSerializer(listed, many=True).data,
                "history": PromotionOutputSerializer(history, many=True).data,
            }
        )


class AliasMoveApi(APIView):
    """``PUT /api/models/<model>/aliases/<name>`` ``{"version": N}``: warm N in every serving process, then
    switch; 200 with the record, or 503 ``promotion_failed`` with the reason (nothing switched)."""

    permission_classes = [CanPromote]

    @extend_schema_serializer(component_name="AliasMoveInput")  # each API's "Input" its own schema
    class InputSerializer(serializers.Serializer):
        version = serializers.IntegerField(min_value=1)

    @extend_schema(request=InputSerializer, responses={200: PromotionOutputSerializer, 400: dict, 404: dict, 503: dict})
    def put(self, request, model_ref, name):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = selectors.model_get(model_ref=model_ref)
        version = selectors.version_get(model=model, number=data.validated_data["version"])
        try:
            aliases.alias_name_validate(name)
        except aliases.InvalidAlias as error:
            raise ValidationError({"name": [str(error)]}) from None
        moved = aliases.alias_move(model=model, version=version, name=name, user=request.user)
        body = PromotionOutputSerializer(moved).data
        if moved.status != moved.Status.SWITCHED:
            body.update(detail=f"not switched: {moved.reason}", code=promotion.PromotionFailed.code)
            return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(body)
