"""HTTP/1.x: tolerant parsing of message heads and framing of bodies."""
