"""The reference upstream: the server the uploader talks to, its storage, console and operator commands.

It runs on another machine with the ``server`` extra; it shares only :mod:`sync.protocol` with the
device's uploader (tests/test_layers.py).
"""
