"""Venue check-in kiosk: camera frame to durable, privacy-preserving check-in."""

__version__ = "0.1.0"
