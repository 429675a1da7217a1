"""docs/credentials.md lists exactly the reason codes the screen's catalogue must translate."""

import re

from conftest import ROOT
from kiosk.credentials.base import REASONS

DOC = (ROOT / "docs" / "credentials.md").read_text(encoding="utf-8")


def test_reason_table_equals_the_code_list():
    section = DOC.split("## Reason codes", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))
    assert documented == set(REASONS)


def test_commands_and_settings_are_documented():
    for words in ("kiosk inspect [--trust PATH] [--at ISO8601] (PAYLOAD | --file F)", "kiosk authority-keys",
                  "kiosk provisioning-code make", "kiosk bench credentials", "hc1_trust", "authority_public_key",
                  "retention_days", "authority_key", "max_age_s"):
        assert words in DOC, words
