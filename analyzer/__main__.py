"""Lets the analyzer run as ``python -m analyzer``; `run` is also the console script."""

import gc


def run() -> None:
    # The imports below build modules, classes and the catalogue, which live until the
    # process ends: a collection during them (one every 700 allocations by default) finds
    # nothing to free. `main()` freezes what they made and turns the collector back on.
    gc.disable()
    # Before any dataclass or regular expression is made: their compiled forms come from the
    # cache (analyzer/startup_cache.py), not from one compile each (≈ 60 % of start-up).
    from analyzer import startup_cache

    startup_cache.install()
    from analyzer.cli import main
    from analyzer.debug_memory import start_from_environment

    start_from_environment()
    try:
        main()
    finally:
        startup_cache.save_if_new()


if __name__ == "__main__":
    run()
