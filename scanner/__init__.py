"""Camera backends and the QR decoder: frames in, payload bytes out."""
