"""Run one fuzz target under atheris (coverage-guided, libFuzzer) for a long run.

    python -m fuzz TARGET [CORPUS_DIR] [libFuzzer options, e.g. -max_total_time=600]
    python -m fuzz --list

The corpus directory (default /tmp/fuzz-corpus/TARGET) is seeded from captures/ on first use;
crashing inputs are written by libFuzzer as crash-* in the current directory. Every crash found
becomes a regression test in tests/test_fuzz.py (REGRESSIONS).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    try:
        import atheris
    except ImportError:
        atheris = None
    if atheris is not None:
        with atheris.instrument_imports(exclude=["click", "tabulate", "dpkt", "scapy"]):
            from fuzz.seeds import seeds
            from fuzz.targets import TARGETS
    else:
        from fuzz.seeds import seeds
        from fuzz.targets import TARGETS

    if len(argv) < 2 or argv[1] in ("-h", "--help", "--list"):
        print(__doc__.strip())
        print("targets:", " ".join(TARGETS))
        return 0 if len(argv) >= 2 else 2
    name = argv[1]
    if name not in TARGETS:
        print(f"unknown target {name!r}; targets: {' '.join(TARGETS)}", file=sys.stderr)
        return 2
    rest = argv[2:]
    if rest and not rest[0].startswith("-"):
        corpus = Path(rest.pop(0))
    else:
        corpus = Path("/tmp/fuzz-corpus") / name
    if not corpus.is_dir() or not any(corpus.iterdir()):
        corpus.mkdir(parents=True, exist_ok=True)
        for seed in seeds(name):
            (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    if atheris is None:
        print("atheris is not installed (pip install atheris); the test suite's hypothesis "
              "harness runs the same targets: pytest tests/test_fuzz.py", file=sys.stderr)
        return 2
    target = TARGETS[name]
    if not any(arg.startswith("-max_len=") for arg in rest):
        rest.append("-max_len=65536")  # whole seed captures, not their first 4 KiB
    atheris.Setup([argv[0], *rest, str(corpus)], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
