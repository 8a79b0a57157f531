"""Lets the analyzer run as ``python -m analyzer``."""

from analyzer.cli import main

main()
