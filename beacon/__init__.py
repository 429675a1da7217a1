"""The venue beacon: Bluezone-compatible IDs broadcast from the kiosk's own key chain.

Nearby Bluezone phones record the IDs they hear; the kiosk's base key is registered upstream, so the
health authority can publish a venue exposure as an ordinary Bluezone F0 message (docs/beacon.md).
"""
