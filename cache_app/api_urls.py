"""The cache's REST surface, under /api/ in the ``api`` namespace (endpoints that name a model are in
``predictions.api_urls``)."""

from django.urls import path

from cache_app import apis

urlpatterns = [
    path("models/cache/stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("models/cache/metrics", apis.CacheMetricsApi.as_view(), name="cache-metrics"),
]
