"""Rendering diagnoses: table, JSON, JSONL, CSV and Markdown. Only the CLI writes them out."""
