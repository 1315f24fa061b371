from jupyter_orchestrate.startup import entry

entry()
