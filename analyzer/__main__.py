"""Lets the analyzer run as ``python -m analyzer``."""

from analyzer.cli import main
from analyzer.debug_memory import start_from_environment

start_from_environment()
main()
