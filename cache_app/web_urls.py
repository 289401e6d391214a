from django.urls import path

from cache_app import views

# Mounted at /admin/cache/ (before the admin's own URLs) by portal/urls.py.
urlpatterns = [
    path("dashboard/", views.cache_dashboard, name="cache-dashboard"),
]
