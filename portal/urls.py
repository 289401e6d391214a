"""Two surfaces, each a namespace: ``api`` (REST, /api/...) and ``web`` (pages); each app has one URL module
per surface. The cache's pages come before the admin's own URLs, which would otherwise claim /admin/cache/."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cache_app import api_urls as cache_api_urls
from cache_app import web_urls as cache_web_urls
from cache_app.apis import metrics_view
from predictions import api_urls as predictions_api_urls
from predictions import web_urls as predictions_web_urls

api_urlpatterns = [
    *cache_api_urls.urlpatterns,
    *predictions_api_urls.urlpatterns,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
]
web_urlpatterns = [*cache_web_urls.urlpatterns, *predictions_web_urls.urlpatterns]

urlpatterns = [
    path("api/", include((api_urlpatterns, "api"))),
    path("metrics", metrics_view, name="metrics"),
    path("", include((web_urlpatterns, "web"))),
    path("admin/", admin.site.urls),
]
handler500 = "portal.exceptions.server_error"
