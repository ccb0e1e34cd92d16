"""Persistence: object store (S3 through minio, or a local directory), database tables and
migrations. Imports nothing from api, workers or training."""
