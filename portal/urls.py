from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cache_app.apis import metrics_view
from predictions import job_urls

urlpatterns = [
    path("admin/cache/", include("cache_app.web_urls")),
    path("admin/", admin.site.urls),
    path("api/models/", include("predictions.urls")),
    path("api/jobs/", include(job_urls.api_urlpatterns)),
    path("jobs/", include(job_urls.web_urlpatterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("predictions.web_urls")),
]
