import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()

if os.environ.get("PORTAL_PRELOAD_AUTOGLUON", "1") == "1":
    # Paid once at server start (gunicorn preloads this module), never by the first request.
    import autogluon.tabular  # noqa: E402, F401
