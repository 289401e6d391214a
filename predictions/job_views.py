"""The jobs pages: upload a CSV as a batch job, list jobs, follow one (progress polled by static/portal/jobs.js)."""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render

from predictions import result_files, selectors
from predictions.jobs import dispatch
from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.inputs import InvalidInput
from predictions.jobs.limits import TooManyJobs, job_limit_check


class JobForm(forms.Form):
    model = forms.ChoiceField(label="Model")
    version = forms.IntegerField(label="Version", required=False, min_value=1, help_text="empty: the current one")
    file = forms.FileField(label="CSV file", widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [
            (m.name, f"{m.name} (v{m.current_version.number})")
            for m in selectors.model_list()
            if m.current_version is not None
        ]


@login_required
def job_list(request):
    form = JobForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        status = 400  # unless the job is created below
        if form.is_valid():
            model = selectors.model_get(model_ref=form.cleaned_data["model"])
            version = selectors.version_get(model=model, number=form.cleaned_data.get("version"))
            upload = form.cleaned_data["file"]
            try:
                job_limit_check(user=request.user)
                job = dispatch.job_submit(version=version, data=upload, filename=upload.name, user=request.user)
            except TooManyJobs as error:
                form.add_error(None, str(error))
                status = 429
            except InvalidInput as error:
                for key, message in error.errors.items():
                    form.add_error("file" if key == "file" else None, message if key == "file" else f"{key}: {message}")
            except (dispatch.JobQueueUnavailable, result_files.ResultStorageUnavailable) as error:
                form.add_error(None, f"{error}. Submit the file again in a moment.")
                status = 503
            else:
                return redirect("web:job-detail", job_id=job.pk)
    job_services.jobs_fail_stalled()
    rows = [
        {"job": job, "progress": job_selectors.job_progress(job)}
        for job in job_selectors.job_list(user=request.user, limit=50)
    ]
    return render(request, "predictions/jobs.html", {"form": form, "rows": rows}, status=status)


job_list.max_body_setting = "PREDICT_JOB_MAX_UPLOAD_BYTES"  # portal.middleware bounds bodies by it


@login_required
def job_detail(request, job_id):
    job_services.jobs_fail_stalled()
    job = job_selectors.job_get(user=request.user, job_id=job_id)
    if job is None:
        raise Http404(f"no job {job_id}")
    context = {"job": job, "progress": job_selectors.job_progress(job), "error": job_selectors.job_error(job)}
    return render(request, "predictions/job_detail.html", context)
