"""Rendering diagnoses: table, JSON, JSONL, CSV, Markdown and the detail view (safe.py makes
capture text safe to print in all of them). Only the CLI writes them out."""
