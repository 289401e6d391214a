"""Run by tests as a separate process: fetch one artifact from N threads and print what each got.

Usage: python -m tests.cache_app.fetch_worker ARTIFACT_ID THREADS  (settings come from the environment).
"""

import json
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from cache_app.models import Artifact
    from cache_app.services.fetch import artifact_fetch
    from tests.processes import in_threads

    artifact_id, threads = int(sys.argv[1]), int(sys.argv[2])

    def ask() -> str:
        try:
            return artifact_fetch(artifact=Artifact.objects.get(pk=artifact_id)).tier
        except Exception as error:  # reported to the test, which fails on it
            return f"error: {error!r}"

    print(json.dumps(in_threads(threads, ask)))


if __name__ == "__main__":
    main()
