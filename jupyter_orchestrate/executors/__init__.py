"""Executors: what runs attempts (TaskExecutor interface, local forkserver, in-memory for tests)."""
