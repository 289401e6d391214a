from django.conf import settings
from django.core.management.base import BaseCommand

from predictions import demo
from predictions.models import MLModel
from predictions.services import model_publish

DEMO_MODELS = [
    ("house-prices", demo.train_house_prices, "zip", "Sale price of a house from its size, rooms, age and city."),
    ("customer-churn", demo.train_customer_churn, "tar.gz", "Will a customer leave? From tenure, spend and plan."),
]


class Command(BaseCommand):
    help = "Train the two small demo models on generated data and publish them (once: existing ones are kept)."

    def handle(self, *args, **options):
        for name, train, format, description in DEMO_MODELS:
            if MLModel.objects.filter(name=name).exists():
                self.stdout.write(f"{name}: already published")
                continue
            predictor_dir = train(settings.DATA_DIR / "demo" / name)
            version = model_publish(predictor_dir=predictor_dir, name=name, format=format)
            MLModel.objects.filter(pk=version.model_id).update(description=description)
            self.stdout.write(f"{name}: published v{version.number} ({version.artifact.size_bytes} bytes)")
