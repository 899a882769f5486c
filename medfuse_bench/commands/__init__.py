"""One module per ``medfuse-bench`` subcommand of the training and evaluation side, named after it and after the
Snakemake rule that runs it: ``train.py`` is ``medfuse-bench train`` and the rule ``train``. Each module's
``register(subparsers)`` adds the subcommand; its ``main(args)`` reads the inputs, calls the pure functions of the
stage's package and writes the outputs.
"""
