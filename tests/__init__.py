# Analyses with keys run in this process by the hundred: tls/keying.py's freeze of the process
# at the first one (what a CLI run gains) would freeze pytest's objects too. The tests of the
# freeze itself run the analyzer in a subprocess (tests/test_tls_keying.py).
from analyzer.tls import keying

keying.FREEZE_AT_LOAD = False
