"""One module per ``medfuse-bench`` subcommand (and Snakemake rule), named after it: ``train.py`` runs
``medfuse-bench train`` and the rule ``train``. Each module's ``register(subparsers)`` adds the subcommand; its run
function reads the inputs, calls the pure functions of the stage's package and writes the outputs.
"""
