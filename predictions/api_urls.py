"""The REST surface of the registry, predictions and jobs, under /api/ in the ``api`` namespace.

``models/cache`` comes before ``models/<model_ref>``: "cache" is not a model.
"""

from django.urls import path

from predictions import alias_apis, apis, cache_apis, job_apis, publishing_apis

urlpatterns = [
    path("models/cache", cache_apis.CacheClearApi.as_view(), name="cache-clear"),
    path("models/", apis.ModelListApi.as_view(), name="model-list"),
    path("models/<str:model_ref>", apis.ModelDetailApi.as_view(), name="model-detail"),
    path("models/<str:model_ref>/predict", apis.PredictApi.as_view(), name="model-predict"),
    path("models/<str:model_ref>/cache/warm", cache_apis.ModelCacheWarmApi.as_view(), name="model-cache-warm"),
    path("models/<str:model_ref>/cache/verify", cache_apis.ModelCacheVerifyApi.as_view(), name="model-cache-verify"),
    path("models/<str:model_name>/versions", publishing_apis.VersionPublishApi.as_view(), name="model-version-publish"),
    path("models/<str:model_ref>/aliases", alias_apis.AliasListApi.as_view(), name="model-aliases"),
    path("models/<str:model_ref>/aliases/<str:name>", alias_apis.AliasMoveApi.as_view(), name="model-alias-move"),
    path("jobs/", job_apis.JobListApi.as_view(), name="job-list"),
    path("jobs/<int:job_id>", job_apis.JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<int:job_id>/result", job_apis.JobResultApi.as_view(), name="job-result"),
]
