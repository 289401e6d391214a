"""The results storage on Azure Blob: django-storages' backend, with its client options kept.

Given a connection string, django-storages builds the client without ``client_options``, so the SDK's own
retries apply (about 80 s of back-off before a request learns that the store is down). Here the options
(timeouts, retries: ``portal.settings``) apply however the account is given.
"""

from azure.storage.blob import BlobServiceClient
from storages.backends.azure_storage import AzureStorage


class ResultsAzureStorage(AzureStorage):
    def _get_service_client(self):
        if self.connection_string is None:
            return super()._get_service_client()
        return BlobServiceClient.from_connection_string(self.connection_string, **self.client_options)
