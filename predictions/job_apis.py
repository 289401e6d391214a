"""The jobs API: submit a CSV batch, follow it, download its result. Thin: ``predictions.jobs`` does the work."""

from django.http import StreamingHttpResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ParseError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.downloads import attachment_header
from predictions import selectors
from predictions.jobs import dispatch
from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.jobs.limits import TooManyJobs, job_limit_check


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model = serializers.CharField(source="version.model.name")
    model_id = serializers.IntegerField(source="version.model_id")
    version = serializers.IntegerField(source="version.number")
    filename = serializers.CharField()
    status = serializers.CharField()
    progress = serializers.SerializerMethodField()
    rows_total = serializers.IntegerField()
    rows_done = serializers.IntegerField()
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    error = serializers.SerializerMethodField()
    node = serializers.CharField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()

    def get_progress(self, job) -> float:
        return job_selectors.job_progress(job)

    def get_error(self, job) -> dict | None:
        return job_selectors.job_error(job)

    def get_url(self, job) -> str:
        return reverse("api:job-detail", args=[job.pk])

    def get_result_url(self, job) -> str | None:
        return reverse("api:job-result", args=[job.pk]) if job.status == job.Status.SUCCEEDED else None


class JobListApi(APIView):
    """``GET``: your jobs (staff: everyone's). ``POST`` multipart ``file`` + ``model`` (+ ``version``): a new job."""

    parser_classes = [MultiPartParser, FormParser]
    max_body_setting = "PREDICT_JOB_MAX_UPLOAD_BYTES"  # portal.middleware bounds bodies by it

    @extend_schema_serializer(component_name="JobSubmitInput")  # each API's "Input" its own schema
    class InputSerializer(serializers.Serializer):
        model = serializers.CharField()
        version = serializers.IntegerField(required=False, min_value=1)

    @extend_schema(operation_id="jobs_list", responses=JobOutputSerializer(many=True))
    def get(self, request):
        job_services.jobs_fail_stalled()
        return Response(JobOutputSerializer(job_selectors.job_list(user=request.user), many=True).data)

    @extend_schema(
        request={"multipart/form-data": InputSerializer},
        responses={
            201: JobOutputSerializer,
            400: OpenApiResponse(description="the row and column at fault"),
            429: OpenApiResponse(description="too many of your jobs are queued or running"),
        },
    )
    def post(self, request):
        try:
            job_limit_check(user=request.user)  # before the upload is read and validated
        except TooManyJobs as error:
            return Response({"detail": str(error), "code": "too_many_jobs"}, status=status.HTTP_429_TOO_MANY_REQUESTS)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = request.FILES.get("file")
        if upload is None:
            raise ParseError("send the rows as a multipart file field named 'file' (CSV with a header row)")
        model = selectors.model_get(model_ref=data.validated_data["model"])
        version = selectors.version_get(model=model, number=data.validated_data.get("version"))
        # InvalidInput (row and column at fault) becomes a 400 in portal.exceptions.
        job = dispatch.job_submit(version=version, data=upload, filename=upload.name, user=request.user)
        body = JobOutputSerializer(job).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id):
        job_services.jobs_fail_stalled()
        return Response(JobOutputSerializer(_visible_job(request, job_id)).data)


class JobResultApi(APIView):
    """The result CSV: the input's columns, ``prediction``, and ``probability_<class>`` for classifiers."""

    @extend_schema(responses={(200, "text/csv"): str, 409: OpenApiResponse(description="not finished")})
    def get(self, request, job_id):
        job = _visible_job(request, job_id)
        if job.expired_at is not None:
            return Response(
                {"detail": f"job {job.pk}'s result has expired and was deleted", "code": "result_expired"},
                status=status.HTTP_410_GONE,
            )
        if job.status != job.Status.SUCCEEDED:
            return Response(
                {"detail": f"job {job.pk} is {job.status}; the result exists once it has succeeded", "status": job.status},
                status=status.HTTP_409_CONFLICT,
            )
        response = StreamingHttpResponse(job_selectors.job_result_lines(job=job), content_type="text/csv; charset=utf-8")
        name = f"{job.version.model.name}-v{job.version.number}-job{job.pk}.csv"
        response["Content-Disposition"] = attachment_header(name)
        return response


def _visible_job(request, job_id: int):
    """The job if this user may see it (its owner, or staff); a 404 otherwise, so ids reveal nothing."""
    job = job_selectors.job_get(user=request.user, job_id=job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job
