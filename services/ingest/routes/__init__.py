"""The ingest service's HTTP routes, one module per resource: reports (one, or a batch) and health.

Routes translate: they read the request, call IngestService, and answer its Result as HTTP.
"""
