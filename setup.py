"""Packaging: the device installs only device extras, the upstream server only server extras.

picamera2 is deliberately absent: on the Pi it comes from Raspberry Pi OS's apt (python3-picamera2),
and the virtual environment is created with --system-site-packages so it can be imported.
"""

from setuptools import find_packages, setup

CORE = [
    "sqlite-utils>=3.35",  # the state database (WAL, migrations, atomic transactions)
    "cryptography>=42",    # sealing, signatures, HC1 verification: never hand-written crypto
    "numpy>=1.24",         # frames are numpy arrays (picamera2's own format)
    "pillow>=10",          # image files for replay and scan-image
    "pynacl>=1.5",         # sealed boxes (identities sealed to the authority) and Ed25519 provisioning codes
    "cbor2>=5.6",          # COSE and CBOR web tokens of vaccine certificates (max_depth, inert semantic tags)
    "base45>=0.4",         # the Base45 layer of vaccine certificates (RFC 9285)
    "jsonschema>=4.18",    # the EU DCC schema check of vaccine certificates (draft 2020-12)
    "asn1crypto>=1.5",     # reads signer certificates' key usage where issuers' DER is not strict enough for cryptography
    "google-re2>=1.1",     # personal-QR patterns in linear time: no pattern can make a scan backtrack (aarch64 wheels)
]
DEVICE = [
    "pyzbar>=0.1.9",   # QR decoding (needs the system library libzbar0, >= 0.23 for exact bytes)
    "zxing-cpp>=3.0",  # the decoder's first stages: ~10x cheaper than zbar per frame, reads more (docs/scanner.md)
    "opencv-python-headless>=4.8",  # USB webcams and video replay (VideoCapture), imported only by those backends
    "segno>=1.6",      # renders QR codes for the synthetic camera, demo and benchmarks
    "pygame>=2.1",     # the screen and sounds; >=2.1 so that the appliance's venv keeps Debian's python3-pygame (kmsdrm)
    "requests>=2.31",  # the uploader
]
SERVER = [
    "fastapi>=0.110",           # the reference upstream's web framework (and its OpenAPI document)
    "uvicorn>=0.30",            # production ASGI server for it (>= 0.30: its multi-worker supervisor)
    "psycopg[binary]>=3.1",     # PostgreSQL storage for a national deployment
    "psycopg-pool>=3.2",        # one bounded connection pool per worker: a saturated database is a quick 503, not a queue
    "httptools>=0.6",           # uvicorn's C HTTP parser: about a fifth less upstream CPU per request (docs/scale.md)
    "uvloop>=0.19",             # uvicorn's libuv event loop for the --workers processes (same measurement)
    "httpx>=0.27",              # `kiosk bench fleet`: the simulated fleet's asynchronous client
    "jinja2>=3.1",              # the console's server-rendered pages (autoescaping templates)
    "argon2-cffi>=23.1",        # console passwords: Argon2id, a memory-hard hash
    "python-multipart>=0.0.9",  # the console's forms (Starlette's form parser)
]
AUTHORITY = [
    "fpdf2>=2.7",  # the provisioning sheet and poster PDFs (A4, embedded DejaVu: Vietnamese prints and copies as text)
    "segno>=1.6",  # the QR code on them
]
TEST = ["pytest>=8", "hypothesis>=6.100", "httpx>=0.27", "schemathesis>=4",  # schemathesis: API fuzzing from the OpenAPI document
        "selenium>=4.20"]  # the console's browser tests, driving Debian's chromium through /usr/bin/chromedriver

setup(
    name="venue-kiosk",
    version="0.1.0",
    description="Venue check-in kiosk appliance for Vietnam: camera, QR check-ins, offline outbox, Bluezone beacon",
    python_requires=">=3.11",
    packages=find_packages(include=["kiosk", "kiosk.*", "scanner", "scanner.*", "beacon", "beacon.*", "sync", "sync.*"]),
    package_data={"kiosk": ["*.toml", "credentials/dcc_schema/*", "screen/fonts/*"],  # fonts: DejaVu + licence
                  "sync": ["openapi.json", "console/templates/*.html", "console/console.css"]},
    install_requires=CORE,
    extras_require={
        "device": DEVICE,
        "pi": DEVICE + ["bluepy>=1.3"],  # bluepy only on the Pi: it builds a helper against BlueZ
        "server": SERVER + AUTHORITY,
        "authority": AUTHORITY,
        "test": DEVICE + SERVER + AUTHORITY + TEST,
    },
    entry_points={"console_scripts": ["kiosk = kiosk.cli:main"]},
)
