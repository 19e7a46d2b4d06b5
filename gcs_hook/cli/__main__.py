"""``python -m gcs_hook.cli``: the same entry point as the ``gcs-hook`` console script."""

from gcs_hook.cli import main

main()
