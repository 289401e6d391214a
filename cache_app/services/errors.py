"""The one exception family for "this model cannot be served right now".

Every layer that can fail to produce a servable model (fetching, locking, room on disk, extraction, and
``predictions``' loading) raises a subclass, so API, web UI and jobs catch one class and answer with its
``code`` instead of each keeping its own list.
"""


class ArtifactUnavailable(Exception):
    code = "model_unavailable"
