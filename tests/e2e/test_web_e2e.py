"""The web page end to end (issue 8): the real `smsc serve` with a simulated carrier, driven by
Debian's headless chromium through selenium (chromedriver from the same package: nothing is
downloaded). Log in, send to two numbers, watch both reach DELIVERED on the messages page (the
carrier's receipts), and see the opt-out count grow after a subscriber's STOP.

SMSC_SCREENSHOT=1 saves the messages page to docs/web-page.png (the README's picture).
"""

import os
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(),
        reason="Debian's chromium is not installed (apt-get install chromium chromium-driver)",
    ),
]

NUMBERS = ["33600000101", "33600000102"]
SHORT_CODE = "36180"  # the account's only sender: where its subscribers reply STOP
SCREENSHOT = Path(__file__).parents[2] / "docs" / "web-page.png"
WAIT = 15.0


@pytest.fixture(scope="module")
def server(smsc_factory, free_ports, sim_control):
    port, control_port = free_ports(2)
    carrier = {"name": "alpha", "port": port, "prefixes": ["33600"], "simulate": True,
               "simulator": {"dlr_delay": 0.2, "control_port": control_port}}  # fmt: skip
    switch = smsc_factory(config={"carriers": [carrier], "http": {"port": 0}}, start=False)
    switch.cli("account", "add", "shop", "--password", "shoppw")
    switch.cli("account", "set", "shop", "--sender", SHORT_CODE, "--company", "Shop SA")
    switch.start()
    switch.carrier = sim_control(control_port)
    return switch


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1280,800", "--lang=en"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def until(driver, check, what: str):
    """What `check(driver)` returns once it is true, reloading the page between looks."""

    def look(d):
        value = check(d)
        if not value:
            d.refresh()
        return value

    # A look that meets the page while it reloads looks again.
    wait = WebDriverWait(driver, WAIT, 0.3, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(look, f"not after {WAIT} s: {what}")


def follow(driver, element) -> None:
    """Click a link or a submit button, and wait for the next page to replace this one."""
    element.click()
    WebDriverWait(driver, WAIT).until(lambda _: _gone(element))


def _gone(element) -> bool:
    """Whether the page that held `element` was replaced. In the midst of the navigation,
    chromedriver may say so in words of its own rather than as a stale element (CI saw it)."""
    try:
        element.is_enabled()
    except StaleElementReferenceException:
        return True
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise
    return False


def subscriber_stop(server, number: str) -> None:
    """A subscriber replies STOP to the short code, through the simulated carrier."""
    server.carrier.mo(number, SHORT_CODE, "STOP")


def states(driver) -> dict[str, str]:
    """Destination → state, from the messages table."""
    rows = driver.find_elements(By.CSS_SELECTOR, "#messages tbody tr")
    cells = [[td.text for td in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    return {c[1]: c[4] for c in cells}


def test_log_in_send_follow_the_receipts_and_the_opt_outs(server, browser):
    host, port = server.listening("HTTP")
    base = f"http://{host}:{port}"
    browser.get(base + "/")
    assert browser.current_url == base + "/login"  # no session yet
    browser.find_element(By.ID, "system_id").send_keys("shop")
    browser.find_element(By.ID, "password").send_keys("wrong")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "main button[type=submit]"))
    assert "Wrong account or password" in browser.find_element(By.CLASS_NAME, "error").text
    browser.find_element(By.ID, "password").send_keys("shoppw")
    follow(browser, browser.find_element(By.CSS_SELECTOR, "main button[type=submit]"))
    assert browser.current_url == base + "/"
    assert "Opt-out list: 0 numbers" in browser.find_element(By.ID, "optouts").text

    browser.find_element(By.ID, "numbers").send_keys("\n".join(NUMBERS))
    browser.find_element(By.ID, "text").send_keys("Bonjour, your order has shipped.")
    counter = browser.find_element(By.ID, "count").text  # the script counts as one types
    assert counter == "32 characters (GSM), 1 SMS"
    # No sender given: the account's only one.
    follow(browser, browser.find_element(By.CSS_SELECTOR, "main button[type=submit]"))
    assert browser.find_element(By.ID, "accepted").text.startswith("2 messages accepted")
    accepted = browser.find_elements(By.CSS_SELECTOR, "#accepted-list tbody tr")
    ids = [row.find_elements(By.TAG_NAME, "td")[1].text for row in accepted]
    assert len(ids) == 2 and all(i.isdigit() for i in ids)

    follow(browser, browser.find_element(By.LINK_TEXT, "Messages"))
    until(browser, lambda d: states(d) == dict.fromkeys(NUMBERS, "DELIVERED"), "both DELIVERED")
    rows = browser.find_elements(By.CSS_SELECTOR, "#messages tbody tr")
    assert {r.find_element(By.TAG_NAME, "td").text for r in rows} == set(ids)
    assert all(r.find_elements(By.TAG_NAME, "td")[7].text for r in rows)  # when the receipt came

    subscriber_stop(server, NUMBERS[0])
    follow(browser, browser.find_element(By.LINK_TEXT, "Send"))
    until(browser, lambda d: "Opt-out list: 1 number" in d.find_element(By.ID, "optouts").text,
          "the STOP counted")  # fmt: skip

    if os.environ.get("SMSC_SCREENSHOT") == "1":
        follow(browser, browser.find_element(By.LINK_TEXT, "Messages"))
        browser.set_window_size(1280, 720)
        browser.save_screenshot(str(SCREENSHOT))
