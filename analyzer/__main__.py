"""Lets the analyzer run as ``python -m analyzer``."""

import gc

from analyzer.debug_memory import start_from_environment  # os and time only

# The imports below build modules, classes and the catalogue, which live until the process
# ends: a collection during them (one every 700 allocations by default) finds nothing to
# free. `main()` freezes what they made and turns the collector back on for the run.
gc.disable()

from analyzer.cli import main  # noqa: E402 (after the collector is off)

start_from_environment()
main()
