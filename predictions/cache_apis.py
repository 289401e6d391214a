"""Cache management for one model or all, in the shapes existing clients use (README, "REST API").

Query parameters are checked strictly (an unknown or blank one is a 400 naming it) and every action is
recorded with who did it (``cache_app.services.audit``), as the admin's actions are.
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cache_app.permissions import CanManageCache
from portal.query_params import query_params_validate
from predictions import model_cache
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
        model_ref = query.get("model_id")
        model = None if model_ref is None else model_get(model_ref=model_ref)
        cleared = model_cache.model_cache_clear(model=model, include_shared=include_shared, user=request.user, via="API")
        if model is None:
            return Response({"message": "All model cache cleared", "artifacts_cleared": len(cleared.artifacts)})
        return Response(
            {
                "message": f"Cache cleared for model {model_ref}",
                "versions_cleared": len(cleared.artifacts),
                "disk_bytes_freed": cleared.disk_bytes_freed,
                "shared_deleted": cleared.shared_deleted,
            }
        )


class ModelCacheWarmApi(APIView):
    permission_classes = [CanManageCache]

    @extend_schema(request=None, responses={200: dict, 404: dict, 503: dict})
    def post(self, request, model_ref):
        query_params_validate(serializers.Serializer, request.query_params)
        version = version_get(model=model_get(model_ref=model_ref))
        served = model_cache.model_cache_warm(version=version, user=request.user, via="API")
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
        ((_, verified),) = model_cache.model_cache_verify(versions=[version], user=request.user, via="API")
        return Response(
            {"checked": verified.checked, "ok": verified.ok, "problems": verified.problems},
            status=200 if verified.ok else 409,
        )
