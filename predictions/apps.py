from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Models and predictions"

    def ready(self):
        from django.core.signals import request_finished, request_started

        from cache_app.services import runtime
        from cache_app.services.serving import loader_register
        from predictions import batching, loaders, lookups, prediction_logs, promotion

        # Warming an artifact anywhere (admin, API, commands) loads it as predictions are served.
        loader_register(loaders.predictor_load)

        # Leaders of a batch wait while other requests of this process are at work (predictions.batching).
        request_started.connect(batching.work_begin, dispatch_uid="batching-work-begin")
        request_finished.connect(batching.work_end, dispatch_uid="batching-work-end")

        # Changes made in this process reach its cached lookups at once (others' within their TTL).
        lookups.receivers_connect()

        # This app's per-process parts, started and stopped with the engine's by the server hooks.
        runtime.register(runtime.Part("lookups", reset=lookups.lookups_reset))
        runtime.register(runtime.Part("prediction logs", stop=prediction_logs.prediction_logs_flush_at_exit))
        # Every gunicorn worker polls for promotions to warm before they switch (web requests only).
        runtime.register(runtime.Part("promotion poller", start=promotion.serving_poller_start,
                                      stop=promotion.serving_poller_stop, reset=promotion.serving_poller_stop,
                                      serving_only=True))
