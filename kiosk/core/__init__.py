"""The core every process stands on: config, state files and database, clock, privacy, lifecycle.

It imports nothing from the application (kiosk/), the screen, scanner/, beacon/ or sync/
(tests/test_layers.py), so the uploader, the beacon and the upstream can use it without them.
"""
