from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Models and predictions"

    def ready(self):
        from cache_app.services.serving import loader_register
        from predictions import loaders, lookups

        # Warming an artifact anywhere (admin, API, commands) loads it as predictions are served.
        loader_register(loaders.predictor_load)

        # Changes made in this process reach its cached lookups at once (others' within their TTL).
        lookups.receivers_connect()

        from predictions import promotion

        # Under gunicorn, every worker forked from here polls for promotions to warm before they switch.
        promotion.serving_poller_install()
