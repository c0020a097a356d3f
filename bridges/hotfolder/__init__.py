"""The hot folder: drop files into recipe folders, results come out (``brushlink watch``).

recipe.py    recipe.toml and <stem>.json sidecars -> Recipe
settle.py    when a dropped file counts; which names are ignored
images.py    files -> PNG for the wire; results -> the recipe's format
outputs.py   atomic writes and moves, collision-free names
journal.py   what was already done for an input when the process died
process.py   one input from recipe to done/ or failed/
runner.py    jobs to the server, waiting while it is away
watcher.py   watchdog events, scans, settling, worker threads
examples.py  the recipes `--init` writes
cli.py       arguments and exit codes
"""
