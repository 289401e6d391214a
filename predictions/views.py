"""The web UI for data scientists (session login, Django templates).

Thin views: ``predictions.forms`` checks the shape of the input, ``predictions.inputs`` its values and
``predictions.services.prediction_run`` predicts. A model that cannot be served (origin down, cache full,
incompatible archive...) is an error message on the page with status 503, never a 500.
"""

import logging
import time

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from cache_app.services.errors import ArtifactUnavailable
from portal.downloads import attachment_header
from predictions import inputs, model_page, result_files, results, selectors, services
from predictions.forms import CSVUploadForm, feature_form_class

logger = logging.getLogger(__name__)

# The page shows at most this many result rows; the download always has all of them.
DISPLAY_ROWS = 500
TIMING_STEPS = ("fetch", "load", "predict")


@login_required
@require_GET
def catalog(request):
    models = [m for m in selectors.model_list() if m.current_version is not None]
    tiers = selectors.cache_tiers_by_version(versions=[m.current_version for m in models])
    rows = [{"model": m, "version": m.current_version, "tiers": tiers[m.current_version.pk]} for m in models]
    return render(request, "predictions/catalog.html", {"rows": rows})


def _model_and_version(name: str):
    model = selectors.model_get(model_ref=name)
    return model, selectors.version_get(model=model)


def _render_model_page(request, version, *, form=None, csv_form=None, status=200, **extra):
    context = {
        "model": version.model,
        "version": version,
        "tiers": selectors.cache_tiers_of(version=version),
        "form": form if form is not None else feature_form_class(version)(),
        "csv_form": csv_form if csv_form is not None else CSVUploadForm(),
        "csv_header": ",".join(version.feature_names),
        **model_page.model_page_context(model=version.model, version=version, request=request),
        **extra,
    }
    return render(request, "predictions/model_detail.html", context, status=status)


@login_required
@require_GET
def model_detail(request, name):
    model, version = _model_and_version(name)
    return _render_model_page(request, version)


@login_required
def model_predict(request, name):
    """One row from the generated form."""
    if request.method != "POST":
        return _back_to_model_page(name)
    started = time.monotonic()
    model, version = _model_and_version(name)
    form = feature_form_class(version)(request.POST)
    if not form.is_valid():
        return _render_model_page(request, version, form=form, status=400, active="form")
    try:
        rows = inputs.rows_from_json(version=version, rows=[form.row()], where="features")
    except inputs.InvalidInput as error:
        form.add_input_errors(error)
        return _render_model_page(request, version, form=form, status=400, active="form")
    result, unavailable = _predict(request, version, rows.features, started=started, form=form, active="form")
    if unavailable:
        return unavailable
    form.add_input_warnings(rows)
    return _render_model_page(
        request, version, form=form, active="form", result=_single_result(version, rows, result)
    )


def _predict(request, version, frame, *, started: float, **page):
    """Predict for the web UI; a model that cannot be served becomes the model page with a 503 message."""
    try:
        result = services.prediction_run(
            version=version, frame=frame, user=request.user, channel="web", started=started
        )
    except ArtifactUnavailable as error:
        logger.warning("model %s unavailable to the web UI: %s", version.model.name, error)
        return None, _render_model_page(request, version, status=503, unavailable=str(error), **page)
    return result, None


@login_required
def model_predict_csv(request, name):
    """A CSV batch: the results are shown as a table and saved as a file for the download link."""
    if request.method != "POST":
        return _back_to_model_page(name)
    started = time.monotonic()
    model, version = _model_and_version(name)
    csv_form = CSVUploadForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _render_model_page(request, version, csv_form=csv_form, status=400, active="csv")
    try:
        parsed = inputs.rows_from_csv(version=version, data=csv_form.cleaned_data["file"])
    except inputs.InvalidInput as error:
        csv_form.add_input_errors(error)
        return _render_model_page(request, version, csv_form=csv_form, status=400, active="csv")
    result, unavailable = _predict(request, version, parsed.features, started=started, active="csv")
    if unavailable:
        return unavailable
    header, rows = results.result_table(parsed, result)
    # The download link re-serves exactly what was shown, without predicting again: the file is in the
    # results storage (every node of a fleet reads it), the session only remembers its name.
    try:
        name = result_files.result_file_save(
            folder=f"{result_files.WEB_FOLDER}/{request.user.pk}", stem=model.name, text=results.csv_text(header, rows)
        )
    except result_files.ResultStorageUnavailable as error:
        # Rows past the table's first ones would reach the user only through the download: no half answer.
        logger.warning("CSV results of %s could not be kept: %s", model.name, error)
        return _render_model_page(
            request, version, csv_form=csv_form, status=503, active="csv", results_unavailable=str(error)
        )
    previous = request.session.get(_session_key(model.name))
    request.session[_session_key(model.name)] = {
        "version": version.number,
        "filename": f"{model.name}-v{version.number}-predictions.csv",
        "name": name,
    }
    if previous and previous.get("name"):
        try:
            result_files.result_files_delete([previous["name"]])
        except result_files.ResultStorageUnavailable as error:
            logger.warning("an earlier CSV result stays until results_clean expires it: %s", error)
    batch = {
        "header": header,
        "rows": [
            {"number": number, "cells": row, "warned": bool(warned)}
            for number, row, warned in zip(parsed.numbers[:DISPLAY_ROWS], rows, parsed.row_warnings)
        ],
        "total_rows": len(rows),
        "warned_rows": sum(1 for warned in parsed.row_warnings if warned),
        "truncated": len(rows) > DISPLAY_ROWS,
        "warnings": parsed.warnings,
        "warnings_omitted": parsed.warnings_omitted,
        "filename": csv_form.cleaned_data["file"].name,
        **_serving(result),
    }
    return _render_model_page(request, version, active="csv", batch=batch)


@login_required
@require_GET
def model_predict_csv_download(request, name):
    model = selectors.model_get(model_ref=name)
    kept = request.session.get(_session_key(model.name))
    try:
        if not kept or not kept.get("name") or not result_files.result_file_exists(kept["name"]):
            raise Http404("no CSV results to download (they expire): upload a CSV first")
        pieces = result_files.result_file_chunks(kept["name"])
    except result_files.ResultStorageUnavailable as error:
        logger.warning("CSV results of %s could not be read: %s", model.name, error)
        return HttpResponse(f"{error}. Try the download again in a moment.", status=503, content_type="text/plain")
    response = StreamingHttpResponse(pieces, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = attachment_header(kept["filename"])
    return response


def _back_to_model_page(name):
    """A GET on a form's target (a reload, a bookmark) goes back to the model page."""
    selectors.model_get(model_ref=name)
    return redirect("web:model-detail", name=name)


def _session_key(model_name: str) -> str:
    return f"predictions:last-batch:{model_name}"


def _serving(result: services.PredictionResult) -> dict:
    total = result.timings_ms["total"] or 1.0
    timings = [
        {"step": step, "ms": result.timings_ms[step], "pct": min(100.0, 100.0 * result.timings_ms[step] / total)}
        for step in TIMING_STEPS
    ]
    return {
        "served_from": result.served_from,
        "from_cache": result.from_cache,
        "timings": timings,
        "total_ms": result.timings_ms["total"],
    }


def _single_result(version, rows: inputs.Rows, result: services.PredictionResult) -> dict:
    probabilities = None
    if result.probabilities:
        ranked = sorted(result.probabilities[0].items(), key=lambda item: item[1], reverse=True)
        probabilities = [{"label": label, "p": p, "pct": 100.0 * p} for label, p in ranked]
    prediction = result.predictions[0]
    quantiles = list(prediction.items()) if isinstance(prediction, dict) else None
    return {
        "label": version.label,
        "prediction": prediction if quantiles is None else None,
        "quantiles": quantiles,
        "probabilities": probabilities,
        "missing": rows.missing[0],
        "all_missing": len(rows.missing[0]) == len(version.features),
        **_serving(result),
    }
