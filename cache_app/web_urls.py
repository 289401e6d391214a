"""The cache's pages for staff, in the ``web`` namespace; mounted under /admin/cache/ (before the admin's own)."""

from django.urls import path

from cache_app import views

urlpatterns = [
    path("admin/cache/dashboard/", views.cache_dashboard, name="cache-dashboard"),
]
