"""Process-wide set-up for the suite."""

import signal

# A shell that starts a command in the background without job control (`./run-tests.sh &` in a
# script, some CI runners) starts it with SIGINT ignored, and every process the tests start
# inherits that: the tests that press Ctrl-C on the analyzer (status 130, partial results)
# would see a process that cannot be interrupted. A Python handler is reset to the default on
# exec, so installing Python's own handler here gives the children a default SIGINT again.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
