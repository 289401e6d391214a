from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from predictions.jobs.services import jobs_expire
from predictions.result_files import ResultStorageUnavailable, web_results_expire


class Command(BaseCommand):
    help = "Delete web CSV results and finished jobs' files older than PREDICT_RESULTS_TTL_HOURS (run it daily)."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, help="Age limit in hours (default: PREDICT_RESULTS_TTL_HOURS).")

    def handle(self, *args, hours, **options):
        cutoff = timezone.now() - timedelta(hours=settings.PREDICT_RESULTS_TTL_HOURS if hours is None else hours)
        try:
            web = web_results_expire(cutoff=cutoff)
            jobs = jobs_expire(cutoff=cutoff)
        except ResultStorageUnavailable as error:
            raise CommandError(f"{error}; what was not deleted is deleted by the next run") from error
        self.stdout.write(f"deleted {web} web result file(s) and the files of {jobs} finished job(s) older than {cutoff:%Y-%m-%d %H:%M} UTC")
