"""Scheduling: when schedules fire, and the scheduler that starts their runs.

:mod:`jupyter_orchestrate.scheduling.timing` holds the pure time arithmetic: validation of a
:class:`~jupyter_orchestrate.models.Schedule`, next fire times for cron expressions (croniter) and ``every``
rules (the ``schedule`` library's grammar), in the schedule's IANA timezone and DST-correct, and the
catch-up policy. It does no I/O and never reads the clock: "now" is always passed in.
"""
