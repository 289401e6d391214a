from django.urls import path

from cache_app import apis

urlpatterns = [
    path("stats", apis.CacheStatsApi.as_view(), name="cache-stats"),
    path("metrics", apis.CacheMetricsApi.as_view(), name="cache-metrics"),
]
