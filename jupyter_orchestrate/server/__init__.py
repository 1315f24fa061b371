"""The Jupyter server extension: jobs, runs and repairs over an authenticated REST API with live events."""
