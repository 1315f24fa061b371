"""Typed seams: events, worker pipe messages and response documents.

Each is defined once here (pydantic models or dataclasses) and used by every writer and reader: the runner
emits `events`, the worker and its parent exchange `messages`, and the service builds `documents` that the
REST API, `--json` and the sidebar's generated TypeScript types share. Status and error-kind enums live with
the domain models (`jupyter_orchestrate.models`).
"""
