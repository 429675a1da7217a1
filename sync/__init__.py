"""Sync: the device's uploader, the reference upstream server, and the signed protocol between them.

The device speaks to the upstream only through :mod:`sync.protocol` (signing, compression, limits);
the upstream's HTTP API is described by ``sync/upstream/openapi.json``, generated from :mod:`sync.upstream.server`.
"""
