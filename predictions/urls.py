from django.urls import include, path

from predictions import apis, cache_apis

# /api/models/cache/... must come before /api/models/<model_ref>: "cache" is not a model.
urlpatterns = [
    path("cache", cache_apis.CacheClearApi.as_view(), name="cache-clear"),
    path("cache/", include("cache_app.urls")),
    path("", apis.ModelListApi.as_view(), name="model-list"),
    path("<str:model_ref>", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("<str:model_ref>/predict", apis.PredictApi.as_view(), name="model-predict"),
    path("<str:model_ref>/cache/warm", cache_apis.ModelCacheWarmApi.as_view(), name="model-cache-warm"),
    path("<str:model_ref>/cache/verify", cache_apis.ModelCacheVerifyApi.as_view(), name="model-cache-verify"),
]
