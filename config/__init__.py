"""Configuration shared by every package: one `Settings` (see `config.settings`).

It sits beside `claims/` at the bottom of the import graph so that `api`, `workers`, `services`,
`models`, `storage` and the migrations all read the same object without importing each other.
"""
