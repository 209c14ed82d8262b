"""What the bench page's tests ask of the page: signing in, its device rows read at one moment,
opening a device. Elements the page redraws are looked up again each time (wait_for retries)."""
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from conftest import TOKENS, URL, api, wait_for

LAB_DEVICES = ("lab-sourcesink", "lab-loopback", "lab-ffs", "lab-ftdi")


def sign_in(driver, token):
    """A fresh tab state (nothing kept), the page loaded, the token typed; waits until live."""
    driver.get(URL + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(URL + "/")
    field = driver.find_element(By.ID, "token")
    wait_for(field.is_displayed, "the page asks for a token")
    field.send_keys(token + Keys.ENTER)
    wait_for(lambda: link(driver) == "live", "the page is live")


def link(driver):
    return driver.find_element(By.ID, "link").text


ROWS = """return [...document.querySelectorAll('#devices button.device')].map(b => {
  const serial = b.querySelector('.serial');
  return [serial ? serial.textContent : b.dataset.id, b.dataset.id, b.querySelector('.name').textContent, b.textContent];
});"""


def rows(driver):
    """The device tree's rows, read at one moment: {serial (or id): {id, name, text}}."""
    return {key: {"id": id, "name": name, "text": text} for key, id, name, text in driver.execute_script(ROWS)}


def open_device(driver, key):
    """Clicks the row of `key` (its serial, or id) and waits until its details show."""
    id = rows(driver)[key]["id"]
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, f'#devices button[data-id="{id}"]').click() or True,
             f"{key} can be clicked")
    wait_for(lambda: id in driver.find_element(By.CSS_SELECTOR, "#detail h3").text, f"{key}'s details")


def device_id(serial):
    status, listing, _ = api("GET", f"/v1/devices?serial={serial}", TOKENS["read"])
    assert status == 200 and listing["devices"], f"{serial}: {status} {listing}"
    return listing["devices"][0]["id"]


def no_csp_violations(driver):
    return driver.execute_script("return window.__csp || []") == []
