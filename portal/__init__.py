# The Celery app is loaded with Django, so ``shared_task`` binds to it (``celery -A portal worker``).
from portal.celery import app as celery_app

__all__ = ("celery_app",)
