"""Sync: the device's uploader (this package) and the reference upstream server (sync/upstream/).

They share only the signed protocol between them, :mod:`sync.protocol` (signing, compression, limits);
the upstream's HTTP API is described by ``sync/upstream/openapi.json``, generated from
:mod:`sync.upstream.server`.
"""
