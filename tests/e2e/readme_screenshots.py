"""The README's pictures of the pages, taken from a stack started by `make run` (its demo data), so
what the README shows is what a newcomer sees:

    make run
    .venv/bin/python -m tests.e2e.readme_screenshots [--profile dev] [--out docs/screenshots]

It logs in with the profile's admin token in Debian's headless chromium (tests/e2e/browser.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy import stack
from shared.adapters.kafka_credentials import read_env_file
from tests.e2e.browser import PHONE, Browser, browser_profile, remove_profile, start_chromium

PAGES = (
    # (file name, page, size): a 2025 province today, and an old district in December 2020 (seed 000)
    ("tinh-2025", "/web/units/38?series=study_session", None),
    ("van-phong-huyen", "/web/units/386?period=2020-12&series=study_session", None),
    ("dien-thoai-huyen", "/web/units/386?period=2020-12&series=study_session", PHONE),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="dev")
    parser.add_argument("--out", default="docs/screenshots")
    args = parser.parse_args(argv)
    profile = stack.Profile(args.profile)
    api = read_env_file(profile.urls_file)["BAOCAO_API_URL"]
    token = (profile.dir / "admin_token").read_text().strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folder = browser_profile()
    driver = start_chromium(folder)
    try:
        browser = Browser(driver, api, out)
        browser.login(token)
        for name, page, size in PAGES:
            browser.open(page)
            browser.wait(lambda d: d.find_elements("css selector", "#totals tr[data-unit]"), what=f"{page}'s table")
            path = browser.screenshot(name, size) if size else browser.screenshot(name)
            print(path)
    finally:
        driver.quit()
        remove_profile(folder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
