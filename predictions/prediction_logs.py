"""The prediction log, written in bulk by a background thread instead of one INSERT per request.

A request appends its log row (a tuple of column values, not a model instance) to this process's buffer and
goes on; a flusher thread writes what has gathered every ``PREDICTION_LOG_FLUSH_SECONDS`` with one
``executemany``. Neither ``PredictionLog(...)`` nor ``bulk_create`` is on this path: they run Python for each
field of each row (about 38 us a row together, 12 us now), and at a thousand predictions a second per worker
that work held the GIL the serving threads need (bench P7 gained 3.6% without it). Nothing is lost on a graceful
stop (gunicorn's ``worker_exit`` and ``atexit`` flush what is left) nor while the database is down (the
rows go back to the front of the buffer and are tried again, later and later); the buffer is bounded by
``PREDICTION_LOG_BUFFER_MAX``, past which the oldest rows are dropped and counted, so an outage cannot
grow a worker without limit. Only a crash (SIGKILL, out of memory) loses what was not flushed yet: at most
about one flush interval of logs.
"""

import atexit
import logging
import os
import threading
import time
from collections import deque

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from predictions.models import PredictionLog

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
# A buffered row's values, in this order (``created_at`` is added when the row is recorded).
COLUMNS = ("user_id", "version_id", "node", "rows", "served_from", "fetch_ms", "load_ms", "predict_ms", "total_ms",
           "channel", "created_at")
RETRY_MAX_SECONDS = 15.0
# At exit, how long to keep trying an unreachable database before giving the rest up (gunicorn kills a
# worker that takes longer than its graceful timeout, 30 s by default).
EXIT_RETRY_SECONDS = 5.0


class LogBuffer:
    def __init__(self):
        self._lock = threading.Lock()
        self._rows: deque[tuple] = deque()
        self._flushing = threading.Lock()  # one writer at a time: the flusher, an exit, a test
        self.dropped = 0
        self._flusher_pid: int | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def record(self, row: tuple) -> None:
        with self._lock:
            self._rows.append(row)
            if len(self._rows) > settings.PREDICTION_LOG_BUFFER_MAX:
                self._rows.popleft()
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    logger.error("prediction log buffer full (%s rows): %s oldest rows dropped so far",
                                 settings.PREDICTION_LOG_BUFFER_MAX, self.dropped)
        self._flusher_start()

    def flush(self) -> int:
        """Write everything buffered; returns how many rows were written. Raises if the database is down,
        with the unwritten rows back at the front of the buffer, in order."""
        with self._flushing:
            with self._lock:
                rows, self._rows = list(self._rows), deque()
            if not rows:
                return 0
            written = 0
            try:
                for start in range(0, len(rows), BATCH_SIZE):
                    _write(rows[start:start + BATCH_SIZE])
                    written = start + min(BATCH_SIZE, len(rows) - start)
            except BaseException:
                with self._lock:
                    self._rows.extendleft(reversed(rows[written:]))
                raise
            finally:
                # The flusher is no request thread: nothing else would close its connection, and one broken by
                # an outage must not be reused. (A caller inside a transaction keeps its own.)
                if not connection.in_atomic_block:
                    connection.close()
            return written

    def _flusher_start(self) -> None:
        if self._flusher_pid == os.getpid():
            return
        with self._lock:
            if self._flusher_pid == os.getpid():
                return
            self._flusher_pid = os.getpid()
            self._stop = threading.Event()
            threading.Thread(target=self._flush_forever, args=(self._stop,), name="prediction-log-flusher",
                             daemon=True).start()

    def _flush_forever(self, stop: threading.Event) -> None:
        delay = settings.PREDICTION_LOG_FLUSH_SECONDS
        while not stop.wait(delay):
            try:
                self.flush()
                delay = settings.PREDICTION_LOG_FLUSH_SECONDS
            except Exception as error:  # noqa: BLE001 - the database is down: keep the rows, try again later
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                logger.warning("could not write %s prediction logs (%s); retrying in %.1fs", len(self), error, delay)

    def flush_at_exit(self) -> None:
        """Flush what is left, trying an unreachable database for up to ``EXIT_RETRY_SECONDS``."""
        self._stop.set()
        give_up = time.monotonic() + EXIT_RETRY_SECONDS
        while len(self):
            try:
                self.flush()
            except Exception as error:  # noqa: BLE001
                if time.monotonic() >= give_up:
                    logger.error("exiting with %s prediction logs unwritten: %s", len(self), error)
                    return
                time.sleep(0.5)

    def after_fork(self) -> None:
        """A forked child starts empty: its parent writes its own rows, and the parent's flusher is not here."""
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._rows = deque()
        self._flusher_pid = None


def _write(rows: list[tuple]) -> None:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.executemany(_insert_sql(), [_db_values(row) for row in rows])
    except (OperationalError, InterfaceError):
        raise  # the database is down: the caller keeps the rows
    except Exception:  # noqa: BLE001 - one bad row (its version deleted since) must not hold back the rest
        for row in rows:
            _write_one(PredictionLog(**dict(zip(COLUMNS, row))))


def _insert_sql() -> str:
    meta = PredictionLog._meta
    quote = connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in COLUMNS)
    return f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(COLUMNS))})"


def _db_values(row: tuple) -> tuple:
    # Only the timestamp needs the backend's form (SQLite stores naive UTC text); the rest are ints, floats,
    # strings and None, which every backend takes as they are.
    return (*row[:-1], connection.ops.adapt_datetimefield_value(row[-1]))


def _write_one(row: PredictionLog) -> None:
    for attempt in ("as recorded", "without its user"):
        if attempt == "without its user":
            if row.user_id is None:
                break
            row.user_id = None  # the user is gone; the prediction still counts
        try:
            with transaction.atomic():
                row.save(force_insert=True)
            return
        except IntegrityError:
            continue
    logger.warning("dropping the log of a prediction whose version no longer exists: version %s", row.version_id)


_buffer = LogBuffer()


def prediction_log_record(**fields) -> None:
    """Log one prediction: buffered, or written at once when ``PREDICTION_LOG_BUFFER`` is false."""
    # Ids, not instances: a row written later must not depend on objects a request may change or delete.
    for name in ("user", "version"):
        if name in fields:
            related = fields.pop(name)
            fields[f"{name}_id"] = related.pk if related is not None else None
    fields["created_at"] = timezone.now()
    # A batch job's chunk is thousands of rows and a second of work: one INSERT is nothing beside it, and a
    # Celery pool child ends without running atexit, which would lose a buffered row.
    if not settings.PREDICTION_LOG_BUFFER or fields.get("channel") == "job":
        PredictionLog(**fields).save(force_insert=True)
        return
    _buffer.record(tuple(fields[name] for name in COLUMNS))


def prediction_logs_flush() -> int:
    return _buffer.flush()


def prediction_logs_flush_at_exit() -> None:
    _buffer.flush_at_exit()


def prediction_logs_pending() -> int:
    return len(_buffer)


def prediction_logs_dropped() -> int:
    return _buffer.dropped


def _at_exit() -> None:
    try:
        _buffer.flush_at_exit()
    except Exception:  # noqa: BLE001 - the interpreter is going down; logging may already be gone
        pass


atexit.register(_at_exit)
os.register_at_fork(after_in_child=_buffer.after_fork)
