"""CSV batch prediction jobs.

- ``services``: create a job (the CSV validated whole, stored as chunk files), run a chunk once, fail,
  expire;
- ``dispatch``: submit and start a job, on Celery workers or in a server thread, and resume the ones a
  restart interrupted;
- ``selectors``: list and get jobs, their progress and errors, their result streamed from storage.

Reading the CSV is ``predictions.inputs``' strict reader, shared with synchronous predictions.
"""
