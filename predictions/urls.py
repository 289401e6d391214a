from django.urls import include, path

from predictions import alias_apis, apis, cache_apis, publishing_apis

# /api/models/cache/... must come before /api/models/<model_ref>: "cache" is not a model.
urlpatterns = [
    path("cache", cache_apis.CacheClearApi.as_view(), name="cache-clear"),
    path("cache/", include("cache_app.urls")),
    path("", apis.ModelListApi.as_view(), name="model-list"),
    path("<str:model_ref>", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("<str:model_ref>/predict", apis.PredictApi.as_view(), name="model-predict"),
    path("<str:model_ref>/cache/warm", cache_apis.ModelCacheWarmApi.as_view(), name="model-cache-warm"),
    path("<str:model_name>/versions", publishing_apis.VersionPublishApi.as_view(), name="model-version-publish"),
    path("<str:model_ref>/aliases", alias_apis.AliasListApi.as_view(), name="model-aliases"),
    path("<str:model_ref>/aliases/<str:name>", alias_apis.AliasMoveApi.as_view(), name="model-alias-move"),
    path("<str:model_ref>/cache/verify", cache_apis.ModelCacheVerifyApi.as_view(), name="model-cache-verify"),
]
