import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Make sure a staff login exists (PORTAL_ADMIN_USER / PORTAL_ADMIN_PASSWORD) and print how to sign in."

    def handle(self, *args, **options):
        username = settings.PORTAL_ADMIN_USER
        password_file = settings.DATA_DIR / "admin-password.txt"
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is None:
            password = settings.PORTAL_ADMIN_PASSWORD or secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        password = password_file.read_text().strip() if password_file.exists() else "(set when it was created)"
        self.stdout.write(
            f"Sign in at http://{settings.PORTAL_BIND}/ "
            f"as {username} / {password}  (password kept in {password_file})"
        )
