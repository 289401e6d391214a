"""P5's comparison: a bare Django view around the same persisted predictor, as a tiny WSGI app.

No database, no auth, no DRF, no cache tiers: parse JSON, build the frame, predict, answer. Loaded by
gunicorn (``bench.bare_app:application``); the predictor is loaded and persisted at import (preload).
BENCH_MODEL_DIR names the extracted predictor folder.
"""

import json
import os

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

import pandas as pd  # noqa: E402
from autogluon.tabular import TabularPredictor  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

PREDICTOR = TabularPredictor.load(os.environ["BENCH_MODEL_DIR"], verbosity=0, require_version_match=False)
PREDICTOR.persist(models="all")
FEATURES = list(PREDICTOR.original_features)


@csrf_exempt
def predict(request):
    if request.method != "POST":
        return JsonResponse({"ready": True})
    features = json.loads(request.body)["features"]
    frame = pd.DataFrame([{name: features.get(name) for name in FEATURES}])
    return JsonResponse({"prediction": float(PREDICTOR.predict(frame).iloc[0])})


urlpatterns = [path("predict", predict)]
application = get_wsgi_application()
