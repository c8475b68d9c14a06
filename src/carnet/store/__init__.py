"""Persistence: SQL tables and migrations, content store, encryption."""
