"""The TLS stage: records, handshake facts, key logs, key schedule and record decryption.

Sans-IO like every stage between the sources and the CLI: bytes in, values out. The
cryptography comes from `cryptography`'s primitives only (AEAD, CBC, HMAC, HKDF); the record
reader, the handshake parser and the key schedule are ours (RFC 8446, RFC 5246).
"""
