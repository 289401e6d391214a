"""The pages for people (session login), in the ``web`` namespace."""

from django.contrib.auth import views as auth_views
from django.urls import path

from predictions import job_views, profile, views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.catalog, name="catalog"),
    path("profile/", profile.profile, name="profile"),
    path("models/<slug:name>/", views.model_detail, name="model-detail"),
    path("models/<slug:name>/predict/", views.model_predict, name="model-predict"),
    path("models/<slug:name>/csv/", views.model_predict_csv, name="model-predict-csv"),
    path("models/<slug:name>/csv/download/", views.model_predict_csv_download, name="model-predict-csv-download"),
    path("jobs/", job_views.job_list, name="jobs"),
    path("jobs/<int:job_id>/", job_views.job_detail, name="job-detail"),
]
