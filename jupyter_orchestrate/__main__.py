from jupyter_orchestrate.cli import entry

entry()
