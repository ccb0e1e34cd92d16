"""Background work: assessing claims. Celery in production; a thread pool in the API process for
the embedded default. Tasks take ids and are enqueued only after the claim is committed."""
