import re

from conftest import run_kiosk


def test_demo_headless_ends_with_summary_line(tmp_path):
    result = run_kiosk("--state-dir", str(tmp_path), "demo", "--headless", "--seconds", "12")
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    m = re.fullmatch(r"demo summary: scanned=(\d+) accepted=(\d+) duplicates=(\d+) rejected=(\d+) errors=0 synced=(\d+)", last)
    assert m, last
    scanned, accepted, duplicates, rejected, synced = map(int, m.groups())
    # The demo script shows four distinct visitors, two repeats and a code nobody knows.
    assert accepted >= 3 and duplicates >= 1 and rejected >= 1
    assert scanned == accepted + duplicates + rejected
    assert synced == accepted  # counted in the local upstream's own database: they really arrived
