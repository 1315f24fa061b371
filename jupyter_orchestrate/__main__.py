from jupyter_orchestrate.cli import main

main()
