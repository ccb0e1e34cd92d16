"""Use cases: what the API routes and the workers call.

Each module holds the use cases of one area (`claims`: filing and following a claim; `reviewing`:
the adjusters' work; `promotion`: the model registry's gate; `idempotency`: the Idempotency-Key
protocol every upload shares). Services take a `Session` and the process's `Services` context, use
the repositories in `storage/` for every query, and raise the `claims.errors` family, never HTTP
errors. They import `models`, `storage`, `config` and `claims`, and never `api` or `workers`.
"""
