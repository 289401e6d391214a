"""Cache management for one model or all, in the shapes of seeds/model-cache-optimization.md.

Query parameters are checked strictly (an unknown or blank one is a 400 naming it) and every action is
recorded with who did it (``cache_app.services.audit``), as the admin's actions are.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cache_app.permissions import CanManageCache
from cache_app.services import maintenance
from cache_app.services.audit import cache_action_record, verified_summary
from portal.query_params import query_params_validate
from predictions import services
from predictions.selectors import model_get, version_get


class CacheClearApi(APIView):
    """``DELETE /api/models/cache[?model_id=X][&tier=shared]``. The origin is never deleted."""

    permission_classes = [CanManageCache]

    class QuerySerializer(serializers.Serializer):
        model_id = serializers.CharField(required=False, allow_blank=False)
        tier = serializers.ChoiceField(choices=["local", "shared"], required=False, default="local")

    @extend_schema(
        parameters=[
            OpenApiParameter("model_id", str, description="A model id or name; default: every model"),
            OpenApiParameter("tier", str, enum=["local", "shared"], description="shared: delete the shared copy too"),
        ],
        responses={200: dict, 404: dict},
    )
    def delete(self, request):
        query = query_params_validate(self.QuerySerializer, request.query_params)
        include_shared = query["tier"] == "shared"
        action = "clear, shared tier included" if include_shared else "clear"
        model_ref = query.get("model_id")
        if model_ref is None:
            cleared = maintenance.artifact_clear_all(include_shared=include_shared)
            cache_action_record(user=request.user, action=action, message=f"API: {len(cleared)} artifacts cleared")
            return Response({"message": "All model cache cleared", "artifacts_cleared": len(cleared)})
        model = model_get(model_ref=model_ref)
        cleared = []
        for version in model.versions.select_related("artifact", "model"):
            cleared.append(maintenance.artifact_clear(artifact=version.artifact, include_shared=include_shared))
            cache_action_record(
                user=request.user,
                action=action,
                message=f"API: now generation {cleared[-1].generation}",
                obj=version.artifact,
                label=str(version),
            )
        return Response(
            {
                "message": f"Cache cleared for model {model_ref}",
                "versions_cleared": len(cleared),
                "disk_bytes_freed": sum(c.disk_bytes_freed for c in cleared),
                "shared_deleted": any(c.shared_deleted for c in cleared),
            }
        )


class ModelCacheWarmApi(APIView):
    permission_classes = [CanManageCache]

    @extend_schema(request=None, responses={200: dict, 404: dict, 503: dict})
    def post(self, request, model_ref):
        query_params_validate(serializers.Serializer, request.query_params)
        version = version_get(model=model_get(model_ref=model_ref))
        served = services.predictor_serve(version=version)
        cache_action_record(user=request.user, action="warm", message=f"API: served from {served.tier}",
                            obj=version.artifact, label=str(version))
        return Response(
            {
                "message": f"Model {version.model.name} v{version.number} is warm",
                "served_from": served.tier,
                "fetch_ms": round(served.fetch_seconds * 1000, 3),
                "load_ms": round(served.load_seconds * 1000, 3),
            }
        )


class ModelCacheVerifyApi(APIView):
    permission_classes = [CanManageCache]

    @extend_schema(request=None, responses={200: dict, 409: dict, 404: dict})
    def post(self, request, model_ref):
        query_params_validate(serializers.Serializer, request.query_params)
        version = version_get(model=model_get(model_ref=model_ref))
        verified = maintenance.artifact_verify(artifact=version.artifact)
        cache_action_record(user=request.user, action="verify", message=f"API: {verified_summary(verified)}",
                            obj=version.artifact, label=str(version))
        return Response(
            {"checked": verified.checked, "ok": verified.ok, "problems": verified.problems},
            status=200 if verified.ok else 409,
        )
