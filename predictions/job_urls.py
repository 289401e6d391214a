"""Batch prediction jobs: REST under /api/jobs/, pages under /jobs/ (see portal/urls.py)."""

from django.urls import path

from predictions import job_apis, job_views

api_urlpatterns = [
    path("", job_apis.JobListApi.as_view(), name="job-api-list"),
    path("<int:job_id>", job_apis.JobDetailApi.as_view(), name="job-api-detail"),
    path("<int:job_id>/result", job_apis.JobResultApi.as_view(), name="job-api-result"),
]
web_urlpatterns = [
    path("", job_views.job_list, name="jobs"),
    path("<int:job_id>/", job_views.job_detail, name="job-detail"),
]
