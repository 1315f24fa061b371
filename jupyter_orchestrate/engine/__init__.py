"""The run engine: ActiveRun (pure state machine) and Runner (drives it with an executor and the store)."""
