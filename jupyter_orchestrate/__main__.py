from jupyter_orchestrate.startup import entry

if (
    __name__ == "__main__"
):  # not when a spawned process (a Dask LocalCluster's worker) imports it as __mp_main__
    entry()
