"""The console in a real browser (Debian's chromium, driven by Selenium through /usr/bin/chromedriver),
against a real upstream on loopback, on SQLite and on a real PostgreSQL: a person logs in, reads the
fleet, follows a venue, downloads its CSV, publishes an exposure, revokes a device and logs out; and
is refused without a session, with a wrong password, as a viewer, with a forged form token, or with
another user's session cookie. Screenshots of each page at 1366x768 are kept (path printed; also
copied to $KIOSK_CONSOLE_SCREENSHOTS when set, which is how docs/console-*.png are made)."""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest
from PIL import Image
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import require_tool, run_kiosk
from console_helpers import HEARTBEAT, PASSWORDS, login, start_console
from sync import protocol as p
from upstream_helpers import PostgresServer



@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def rig(request, tmp_path_factory):
    pg = None
    if request.param == "postgresql":
        pg = PostgresServer().start()
        db = pg.url
    else:
        db = str(tmp_path_factory.mktemp("console") / "upstream.db")
    rig = start_console(db)
    yield rig
    rig.upstream.stop()
    if pg:
        pg.stop()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nconsole screenshots: {path}")
    return path


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    # Debian's chromium and its driver: no browser downloaded
    options.binary_location = require_tool("chromium", "chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1366,900",
                "--lang=vi", "--disable-gpu"):
        options.add_argument(arg)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(require_tool("chromedriver", "chromium-driver")), options=options)  # no Selenium Manager download
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    driver.set_page_load_timeout(60)
    driver.downloads = downloads
    yield driver
    driver.quit()


def shoot(driver, screenshots: Path, name: str) -> None:
    path = screenshots / f"console-{name}.png"
    driver.save_screenshot(str(path))
    wanted = os.environ.get("KIOSK_CONSOLE_SCREENSHOTS")
    if wanted:  # for the docs: 64 colours are plenty for these pages, at a third of the bytes
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(64).save(Path(wanted) / path.name, optimize=True)


def log_in(driver, url: str, name: str, password: str | None = None) -> None:
    driver.get(url + "/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password or PASSWORDS[name])
    click(driver, driver.find_element(By.ID, "login"))


def click(driver, element) -> None:
    """Click, and wait until the next page has replaced this one (a form post can take a moment)."""
    element.click()

    def replaced(_driver) -> bool:
        try:
            element.is_enabled()
            return False
        except WebDriverException:  # stale, or chromedriver's "node does not belong to the document"
            return True

    WebDriverWait(driver, 30).until(replaced)


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def wait_for_file(folder: Path, timeout_s: float = 30) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = [f for f in folder.iterdir() if f.suffix == ".csv"]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError("the CSV was not downloaded")


def test_operator_tasks_in_the_browser(rig, browser, screenshots):
    url = rig.url
    browser.get(url + "/lang/en")  # the screenshots for the docs are in English; Vietnamese is the default
    shoot_login = browser.current_url.endswith("/login")
    assert shoot_login, "a page without a session leads to the login form"
    shoot(browser, screenshots, "login")
    log_in(browser, url, "op")
    assert browser.current_url == url + "/fleet" and text(browser, "user") == "op"

    # Fleet: the silent device first and marked, the others with their heartbeat's figures.
    rows = browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")
    assert rows[0].get_attribute("data-device") == "kiosk-cbt-2" and "silent" in rows[0].get_attribute("class")
    assert "Silent" in rows[0].text and "never" in rows[0].text
    assert text(browser, "silent-alert").endswith("longer than 900 seconds: 1")
    heard = browser.find_element(By.CSS_SELECTOR, "tr[data-device='kiosk-cbt-1']").text
    assert "7" in heard and "-120" in heard and "advertising" in heard and "OK" in heard
    shoot(browser, screenshots, "fleet")

    # Venues: today's and this week's counts, a chart of 14 days, devices and beacon keys.
    click(browser, browser.find_element(By.LINK_TEXT, "Venues"))
    venue = browser.find_element(By.CSS_SELECTOR, "tr[data-venue='CHO-BEN-THANH']")
    assert venue.find_element(By.CLASS_NAME, "today").text == "4"
    week = int(venue.find_element(By.CLASS_NAME, "week").text)
    assert week in (4, 6)  # the two check-ins three days ago are this week unless today is Monday to Wednesday
    bars = venue.find_elements(By.CSS_SELECTOR, "svg.chart rect")
    assert len(bars) == 14 and sum(1 for b in bars if float(b.get_attribute("height")) > 0) == 2
    assert "kiosk-cbt-1, kiosk-cbt-2" in venue.text and "2020-08-08" in venue.text
    shoot(browser, screenshots, "venues")

    # Follow the venue: today's trace in local time, identities sealed.
    click(browser, venue.find_element(By.LINK_TEXT, "CHO-BEN-THANH"))
    assert text(browser, "count") == "4"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#trace tbody tr")) == 4
    assert "Nguyễn" not in browser.page_source and "sealed" in text(browser, "trace")
    shoot(browser, screenshots, "venue")

    # The CSV, as downloaded by the browser, is the CLI's trace of the same window, row for row.
    link = browser.find_element(By.ID, "csv").get_attribute("href")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)
    assert query["from"][0].endswith("+07:00") and query["to"][0].endswith("+07:00")
    browser.find_element(By.ID, "csv").click()
    downloaded = wait_for_file(browser.downloads)
    cli = run_kiosk("upstream", "trace", "--db", rig.db, "--venue", "CHO-BEN-THANH", "--from", query["from"][0],
                    "--to", query["to"][0], "--format", "csv")
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert downloaded.read_bytes().decode("utf-8").splitlines() == lines
    assert len(lines) == 5 and [line.split(",")[0] for line in lines[1:]] == rig.today_ids
    assert all("+07:00" in line for line in lines[1:]) and "'+" in cli.stdout  # the formula guard

    # Exposure: the F0 entries for this window from the venue's registered beacon key.
    click(browser, browser.find_element(By.ID, "make-f0"))
    exposure = run_kiosk("upstream", "exposure", "--db", rig.db, "--venue", "CHO-BEN-THANH",
                         "--from", query["from"][0], "--to", query["to"][0])
    assert json.loads(text(browser, "f0")) == json.loads(exposure.stdout)["f0"] != []
    shoot(browser, screenshots, "exposure")

    # Revoke with a confirmation; the device's next request is refused.
    browser.get(url + "/fleet")
    click(browser, browser.find_element(By.CSS_SELECTOR, "tr[data-device='kiosk-bx-1'] a.danger"))
    assert "cannot be undone" in browser.page_source
    shoot(browser, screenshots, "revoke")
    click(browser, browser.find_element(By.ID, "confirm-revoke"))
    assert "Device revoked: kiosk-bx-1" in text(browser, "notice")
    assert "Revoked" in browser.find_element(By.CSS_SELECTOR, "tr[data-device='kiosk-bx-1']").text
    answer = rig.devices["kiosk-bx-1"].send(p.PATH_HEARTBEAT, {"software_version": "1", "sent_utc_ms": 0})
    assert answer.status_code == 403 and answer.json()["reason"] == "device-revoked"

    # The audit log names who looked at which venue's trace, and what they did.
    click(browser, browser.find_element(By.LINK_TEXT, "Audit log"))
    audit = text(browser, "audit")
    for action in ("view-trace CHO-BEN-THANH", "download-csv CHO-BEN-THANH", "exposure CHO-BEN-THANH",
                   "revoke kiosk-bx-1", "login"):
        assert f"op {action}" in audit, action
    shoot(browser, screenshots, "audit")

    # Vietnamese is one click away, and the default.
    click(browser, browser.find_element(By.LINK_TEXT, "Tiếng Việt"))
    assert "Nhật ký truy cập" in browser.page_source

    click(browser, browser.find_element(By.ID, "logout"))
    assert browser.current_url == url + "/login"
    browser.get(url + "/fleet")
    assert browser.current_url == url + "/login"


def test_refusals_in_the_browser(rig, browser, screenshots):
    url = rig.url
    # No session: every page leads to the login form, the CSV included.
    for path in ("/fleet", "/venues", "/venues/CHO-BEN-THANH", "/venues/CHO-BEN-THANH/checkins.csv?from=2020-01-01&to=2100-01-01",
                 "/audit"):
        browser.get(url + path)
        assert browser.current_url == url + "/login", path
    assert not list(browser.downloads.iterdir())

    # A wrong password: refused, said so, no session.
    log_in(browser, url, "op", "not the password")
    assert browser.current_url == url + "/login" and "Sai tên người dùng hoặc mật khẩu" in text(browser, "error")
    shoot(browser, screenshots, "login-refused")
    browser.get(url + "/fleet")
    assert browser.current_url == url + "/login"

    # A viewer sees no revoke button, the confirmation page refuses, and a forged post changes nothing.
    log_in(browser, url, "viewer")
    assert browser.current_url == url + "/fleet"
    assert not browser.find_elements(By.CSS_SELECTOR, "#fleet a.danger")
    browser.get(url + "/fleet/kiosk-cbt-1/revoke")
    assert "Chỉ người vận hành" in text(browser, "refused")
    browser.get(url + "/fleet")
    token = browser.find_element(By.NAME, "csrf").get_attribute("value")  # the viewer's own, from the logout form
    submit_form(browser, "/fleet/kiosk-cbt-1/revoke", token)
    assert "Chỉ người vận hành" in text(browser, "refused")
    browser.get(url + "/audit")
    assert "Chỉ người vận hành" in text(browser, "refused")
    viewer_cookie = browser.get_cookie("kiosk_console")
    assert viewer_cookie["httpOnly"] and viewer_cookie["sameSite"] == "Strict" and not viewer_cookie["secure"]
    click(browser, browser.find_element(By.ID, "logout"))

    # An operator's confirmation page with a forged form token: refused, device still in service.
    log_in(browser, url, "op")
    browser.get(url + "/fleet/kiosk-cbt-1/revoke")
    browser.execute_script("document.getElementsByName('csrf')[1].value = 'forged-token'")
    click(browser, browser.find_element(By.ID, "confirm-revoke"))
    assert "Biểu mẫu đã hết hạn" in text(browser, "refused")

    # Another user's session cookie under this page's form token: refused too.
    other = login(url, "op2")
    browser.get(url + "/fleet/kiosk-cbt-1/revoke")
    browser.delete_cookie("kiosk_console")
    browser.add_cookie({"name": "kiosk_console", "value": other.cookies["kiosk_console"], "path": "/"})
    click(browser, browser.find_element(By.ID, "confirm-revoke"))
    assert "Biểu mẫu đã hết hạn" in text(browser, "refused")
    still = rig.devices["kiosk-cbt-1"].send(p.PATH_HEARTBEAT, {**HEARTBEAT, "sent_utc_ms": time.time_ns() // 1_000_000})
    assert still.status_code == 200  # not revoked

    # The audit log has the refused login and the refused forms.
    browser.get(url + "/audit")
    audit = text(browser, "audit")
    assert "op login-refused wrong password" in audit
    assert "viewer refused /fleet/kiosk-cbt-1/revoke operator only" in audit
    assert audit.count("csrf-refused /fleet/kiosk-cbt-1/revoke") == 2


def submit_form(driver, action: str, token: str) -> None:
    """A POST made by the page itself, as a tampering user would make it."""
    driver.execute_script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];"
        "const i = document.createElement('input'); i.name = 'csrf'; i.value = arguments[1]; f.appendChild(i);"
        "document.body.appendChild(f); f.submit();", action, token)
    WebDriverWait(driver, 30).until(expected_conditions.presence_of_element_located((By.ID, "refused")))
