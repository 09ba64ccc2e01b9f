"""Debian's chromium, headless, driven through its chromedriver (Selenium). No browser is
downloaded: deploy/install.sh installs the two Debian packages; when they are missing the browser
tests fail and say so, they are never skipped."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

T = TypeVar("T")
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--lang=vi-VN",
)
DESKTOP = (1280, 1000)
PHONE = (390, 844)


def start_chromium(profile_dir: Path) -> WebDriver:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(
                f"{path} is missing: the browser tests need Debian's chromium and chromium-driver "
                "(deploy/install.sh installs them when run as root with apt-get)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.add_argument(f"--window-size={DESKTOP[0]},{DESKTOP[1]}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver


class Browser:
    """A page at a time, with waits that poll the page (never a fixed sleep)."""

    def __init__(self, driver: WebDriver, base_url: str, screenshots: Path) -> None:
        self.driver = driver
        self.base = base_url
        self.screenshots = screenshots

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def wait(self, check: Callable[[WebDriver], T], timeout: float = 30, what: str = "the page") -> T:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(check, f"waiting for {what}")
        except TimeoutException:
            shot = self.screenshots / "timeout.png"
            self.driver.save_screenshot(str(shot))
            body = self.driver.find_element(By.TAG_NAME, "body").text
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what} at {self.path}; screenshot {shot}; page text:\n{body}"
            ) from None

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str) -> str:
        return self.find(css).text

    @property
    def path(self) -> str:
        url: str = self.driver.current_url
        return url.removeprefix(self.base)

    def login(self, token: str) -> None:
        """Starts a fresh session: logs out, then pastes the token as a person would."""
        self.open("/web/login")
        self.driver.delete_all_cookies()
        self.open("/web/login")
        box = self.find("#token")
        self.driver.execute_script("arguments[0].value = arguments[1]", box, token)  # a paste, not 300 keystrokes
        self.find("form[action='/web/login'] button").click()
        self.wait(lambda d: "/web/login" not in d.current_url, what="the login to finish")

    def fill_form(self, values: dict[str, str]) -> None:
        """Types ``values`` into the report form's fields (``#f-<name>``): a choice for a select, the
        ISO date for a date field (set as the page's script would), the text otherwise."""
        for name, value in values.items():
            box = self.find(f"#f-{name}")
            if box.tag_name == "select":
                Select(box).select_by_value(value)
            elif box.get_attribute("type") == "date":
                self.script("arguments[0].value = arguments[1]", box, value)
            else:
                box.clear()
                box.send_keys(value)

    def session_cookie(self) -> str:
        cookie = self.driver.get_cookie("baocao_session")
        assert cookie is not None, "no session cookie after login"
        return str(cookie["value"])

    def script(self, source: str, *args: Any) -> Any:
        return self.driver.execute_script(source, *args)

    def screenshot(self, name: str, size: tuple[int, int] = DESKTOP) -> Path:
        """A PNG of the page as it is now, the window sized to ``size`` (height grown to the page)."""
        width, height = size
        self.driver.set_window_size(width, height)
        full = int(self.script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, max(height, min(full + 140, 2600)))
        path = self.screenshots / f"{name}.png"
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(*DESKTOP)
        return path


def browser_profile() -> Path:
    return Path(tempfile.mkdtemp(prefix="baocao-chromium-"))


def remove_profile(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
