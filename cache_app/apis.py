"""Cache state over REST: stats in the shape existing clients read (README, "REST API"), and metrics.

Endpoints that name a model (clear by ``model_id``, warm, verify) live in ``predictions.cache_apis``:
``cache_app`` knows artifacts, not models."""

from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cache_app import metrics, selectors
from cache_app.permissions import IsStaff
from cache_app.services.stats import counters
from portal.query_params import query_params_validate


class CacheStatsApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(responses=dict)
    def get(self, request):
        query_params_validate(serializers.Serializer, request.query_params)
        counters().flush()  # this process's latest counts, included
        stats = selectors.cache_stats()
        return Response(
            {
                "cache_stats": stats,
                "message": f"Cache contains {stats['total_models']} models using {stats['total_size_mb']} MB",
            }
        )


class CacheMetricsApi(APIView):
    permission_classes = [IsStaff]

    class QuerySerializer(serializers.Serializer):
        hours = serializers.IntegerField(required=False, min_value=1, max_value=24 * 90, default=24)

    @extend_schema(parameters=[QuerySerializer], responses=dict)
    def get(self, request):
        query = query_params_validate(self.QuerySerializer, request.query_params)
        counters().flush()
        return Response(selectors.cache_metrics(hours=query["hours"]))


# GET and HEAD only; exempt from CSRF, which would otherwise refuse other methods with its 403 before the 405.
@csrf_exempt
@require_safe
def metrics_view(request):
    return HttpResponse(metrics.metrics_render(), content_type="text/plain; version=0.0.4; charset=utf-8")
