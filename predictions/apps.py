from django.apps import AppConfig


class PredictionsConfig(AppConfig):
    name = "predictions"
    verbose_name = "Models and predictions"

    def ready(self):
        from predictions import lookups

        # Changes made in this process reach its cached lookups at once (others' within their TTL).
        lookups.receivers_connect()

        from predictions import promotion

        # Under gunicorn, every worker forked from here polls for promotions to warm before they switch.
        promotion.serving_poller_install()
