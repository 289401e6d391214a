"""The web UI for data scientists (session login, Django templates).

Thin views: ``predictions.forms`` checks the shape of the input, ``predictions.inputs`` its values and
``predictions.services.prediction_run`` predicts. A model that cannot be served (origin down, cache full,
incompatible archive...) is an error message on the page with status 503, never a 500.
"""

import csv
import io
import logging
import time

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from cache_app.services.errors import ArtifactUnavailable
from predictions import inputs, selectors, services
from predictions.forms import CSVUploadForm, feature_form_class

logger = logging.getLogger(__name__)

# The page shows at most this many result rows; the download always has all of them.
DISPLAY_ROWS = 500
TIMING_STEPS = ("fetch", "load", "predict")


@login_required
@require_GET
def catalog(request):
    rows = [
        {"model": m, "version": m.current_version, "tiers": selectors.cache_tiers_of(version=m.current_version)}
        for m in selectors.model_list()
        if m.current_version is not None
    ]
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
        frame = inputs.rows_from_json(version=version, rows=[form.row()], where="features")
    except inputs.InvalidInput as error:
        form.add_input_errors(error)
        return _render_model_page(request, version, form=form, status=400, active="form")
    result, unavailable = _predict(request, version, frame, started=started, form=form, active="form")
    if unavailable:
        return unavailable
    return _render_model_page(
        request, version, form=form, active="form", result=_single_result(version, result)
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
    """A CSV batch: the results are shown as a table and kept in the session for the download link."""
    if request.method != "POST":
        return _back_to_model_page(name)
    started = time.monotonic()
    model, version = _model_and_version(name)
    csv_form = CSVUploadForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _render_model_page(request, version, csv_form=csv_form, status=400, active="csv")
    try:
        frame = inputs.rows_from_csv(version=version, data=csv_form.cleaned_data["file"].read())
    except inputs.InvalidInput as error:
        csv_form.add_input_errors(error)
        return _render_model_page(request, version, csv_form=csv_form, status=400, active="csv")
    result, unavailable = _predict(request, version, frame, started=started, active="csv")
    if unavailable:
        return unavailable
    header, rows = _result_table(version, frame, result)
    # The session keeps the last batch per model, so the download link re-serves exactly what was shown
    # without predicting again. The session lives in the database: fine for the row limit of one request.
    request.session[_session_key(model.name)] = {
        "version": version.number,
        "filename": f"{model.name}-v{version.number}-predictions.csv",
        "csv": _csv_text(header, rows),
    }
    batch = {
        "header": header,
        "rows": rows[:DISPLAY_ROWS],
        "total_rows": len(rows),
        "truncated": len(rows) > DISPLAY_ROWS,
        "filename": csv_form.cleaned_data["file"].name,
        **_serving(result),
    }
    return _render_model_page(request, version, active="csv", batch=batch)


@login_required
@require_GET
def model_predict_csv_download(request, name):
    model = selectors.model_get(model_ref=name)
    kept = request.session.get(_session_key(model.name))
    if not kept:
        raise Http404("no CSV results to download: upload a CSV first")
    response = HttpResponse(kept["csv"], content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{kept["filename"]}"'
    return response


def _back_to_model_page(name):
    """A GET on a form's target (a reload, a bookmark) goes back to the model page."""
    selectors.model_get(model_ref=name)
    return redirect("model-detail", name=name)


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


def _single_result(version, result: services.PredictionResult) -> dict:
    probabilities = None
    if result.probabilities:
        ranked = sorted(result.probabilities[0].items(), key=lambda item: item[1], reverse=True)
        probabilities = [{"label": label, "p": p, "pct": 100.0 * p} for label, p in ranked]
    return {
        "label": version.label,
        "prediction": result.predictions[0],
        "probabilities": probabilities,
        **_serving(result),
    }


def _result_table(version, frame, result: services.PredictionResult) -> tuple[list[str], list[list]]:
    """The input columns, then the prediction, then one probability column per class."""
    classes = list(result.probabilities[0]) if result.probabilities else []
    header = [*version.feature_names, services.prediction_column(version), *(f"probability_{c}" for c in classes)]
    values = frame.astype(object).where(frame.notna(), "").to_numpy().tolist()
    # Whole numbers of int features were parsed as floats: show and download them as typed (3, not 3.0).
    integer_columns = [i for i, f in enumerate(version.features) if f["dtype"] == "int"]
    for row in values:
        for i in integer_columns:
            if isinstance(row[i], float) and row[i].is_integer():
                row[i] = int(row[i])
    rows = []
    for index, row in enumerate(values):
        probabilities = result.probabilities[index] if result.probabilities else {}
        rows.append([*row, result.predictions[index], *(probabilities[c] for c in classes)])
    return header, rows


def _csv_text(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()
