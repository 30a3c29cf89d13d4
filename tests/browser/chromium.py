"""Headless Chromium, driven by Selenium, for the browser tests (the `browser` fixture), and the
local API it talks to (`wall_api`: the session's scripts/local, three instances per function,
behind the contract tests' emulator shim)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import LocalApi

import pytest
from contract.emulator_shim import EmulatorShim
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DESKTOP = (1280, 900)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium per test module, with a fresh profile, console and network logs."""
    for path in (CHROMIUM, CHROMEDRIVER):
        assert Path(path).exists(), f"{path} is missing: run scripts/setup system as root"
    profile = tmp_path_factory.mktemp("chromium-profile")
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 f"--window-size={DESKTOP[0]},{DESKTOP[1]}", "--lang=en-GB"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
    })
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def wall_api(local_api):
    """The local API behind tests/contract/emulator_shim.py, which retries once a GET that cargo
    lambda watch itself answered with its own 500 document (never a function's answer, never a
    POST or DELETE). The browser and the tests talk to the shim: without it, about one run in five
    met that 500 somewhere (on the page load, a refresh or a test's own request). The module's
    teardown fails when the shim retried more than its stated rate allows."""
    with EmulatorShim(local_api.url) as shim:
        yield LocalApi(shim.url, local_api.efs, local_api.log)
        print("\n" + shim.report())
        shim.assert_retry_rate()


def console(driver) -> list[dict]:
    """The console entries since the last call (reading the log empties it)."""
    return driver.get_log("browser")


def network_requests(driver) -> list[tuple[str, str]]:
    """(method, URL) of every request the page started since the last call."""
    sent = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            sent.append((request["method"], request["url"]))
    return sent
