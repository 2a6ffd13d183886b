#!/usr/bin/env python3
"""A reference for the seal and open benchmark: AES-256-GCM with Python `cryptography`
over a file in 1 MiB chunks, each with a fresh random nonce (written before it), the way
a hand-rolled script would do it. Not authenticated as a whole (no chunk order, no end):
it is a speed reference, not a format.

Usage: python_aesgcm.py seal PLAIN OUT | open SEALED OUT
"""
import os
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CHUNK = 1 << 20
mode, source, target = sys.argv[1:4]
aead = AESGCM(b"\x11" * 32)  # a fixed key: this measures speed only
with open(source, "rb") as inp, open(target, "wb") as out:
    if mode == "seal":
        while chunk := inp.read(CHUNK):
            nonce = os.urandom(12)
            out.write(nonce + aead.encrypt(nonce, chunk, None))
    else:
        while piece := inp.read(12 + CHUNK + 16):
            out.write(aead.decrypt(piece[:12], piece[12:], None))
