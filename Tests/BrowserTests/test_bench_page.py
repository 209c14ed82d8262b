"""The bench page (GET /) in chromium against the daemon in the lab: loads clean (no console
error, no CSP violation), shows the lab's devices, follows a gadget unplugged and plugged, shows
a lease taken with curl and lets an admin (not a transfer token) end it, shows claims made
before it loaded, shows a device's HTML
strings as text, opens a console through a one-use ticket, and recovers from a daemon restart.
The tests run in order, in one browser; each leaves the page signed in as the admin."""
import json
import os
import shlex
import subprocess
import time
from datetime import datetime
from email.utils import parsedate_to_datetime

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.select import Select

from conftest import (SHOTS, TOKENS, URL, api, console_errors, guest, start_board,
                      wait_for)
from page import LAB_DEVICES, device_id, link, no_csp_violations, open_device, rows, sign_in


def test_the_page_loads_clean_and_shows_the_labs_devices(browser, figures):
    status, _, headers = api("GET", "/")
    assert status == 200
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert headers["X-Frame-Options"] == "DENY"

    # A first visit: nothing cached, no token kept. The page asks for one without an error.
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})
    started = time.monotonic()
    browser.get(URL + "/")
    paint = browser.execute_script(
        "return Object.fromEntries(performance.getEntriesByType('paint').map(e => [e.name, e.startTime]))")
    wait_for(browser.find_element(By.ID, "token").is_displayed, "the page asks for a token")
    weight = browser.execute_script(
        "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))"
        ".filter(e => !e.name.includes('/v1/')).reduce((n, e) => n + e.transferSize, 0)")
    browser.find_element(By.ID, "token").send_keys(TOKENS["admin"] + Keys.ENTER)
    wait_for(lambda: all(serial in rows(browser) for serial in LAB_DEVICES), "the lab's devices are listed")
    figures["first_contentful_paint_ms"] = round(paint.get("first-contentful-paint", -1))
    figures["page_transfer_bytes"] = weight
    figures["devices_shown_after_load_s"] = round(time.monotonic() - started, 3)
    assert len(rows(browser)) >= 12
    assert browser.find_element(By.ID, "node").text == "bench-7"
    assert "bench-admin" in browser.find_element(By.ID, "who").text

    # A slow bench PC: the CPU four times slower (Chrome's throttling), nothing cached, signed in.
    browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 4})
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})
    started = time.monotonic()
    browser.get(URL + "/")
    wait_for(lambda: all(serial in rows(browser) for serial in LAB_DEVICES), "the lab's devices, slowly")
    figures["slow_pc_devices_shown_s"] = round(time.monotonic() - started, 3)
    figures["slow_pc_first_contentful_paint_ms"] = round(browser.execute_script(
        "return performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint').startTime"))
    browser.execute_cdp_cmd("Emulation.setCPUThrottlingRate", {"rate": 1})

    # The keyboard: "/" filters, arrows move, Enter opens.
    browser.find_element(By.TAG_NAME, "body").send_keys("/")
    assert browser.switch_to.active_element.get_attribute("id") == "filter"
    browser.switch_to.active_element.send_keys("lab-loopback")
    wait_for(lambda: list(rows(browser)) == ["lab-loopback"], "the filter leaves the loopback gadget")
    browser.switch_to.active_element.send_keys(Keys.CONTROL, "a", Keys.DELETE)
    wait_for(lambda: len(rows(browser)) >= 12, "every device again")
    ids = [row["id"] for row in rows(browser).values()]
    browser.find_element(By.CSS_SELECTOR, f'#devices button[data-id="{ids[0]}"]').send_keys(Keys.ARROW_DOWN)
    assert browser.switch_to.active_element.get_attribute("data-id") == ids[1]
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait_for(lambda: ids[1] in browser.find_element(By.CSS_SELECTOR, "#detail h3").text, "Enter opens the device")

    assert console_errors(browser) == []
    assert no_csp_violations(browser)


def test_a_gadget_unplugged_and_plugged_leaves_and_comes_back(browser, figures):
    assert "lab-loopback" in rows(browser)
    # Timed from before the guest is asked to unbind (or bind) the gadget: the agent's round trip,
    # the guest's USB stack, the daemon's hot-plug handling, the event, the page's redraw.
    udc = "/sys/kernel/config/usb_gadget/loopback/UDC"
    started = time.monotonic()
    guest(f'echo "" > {udc}')
    wait_for(lambda: "lab-loopback" not in rows(browser), "the unplugged gadget leaves the page", 10)
    gone = time.monotonic() - started
    started = time.monotonic()
    guest(f"echo dummy_udc.1 > {udc}")
    wait_for(lambda: "lab-loopback" in rows(browser), "the plugged gadget is back on the page", 10)
    back = time.monotonic() - started
    # The bound is the test's deadline (the lab is loaded in CI); the figures say how long it took.
    figures["unplug_shown_after_s"] = round(gone, 3)
    figures["plug_shown_after_s"] = round(back, 3)
    events = browser.find_element(By.ID, "events").text
    assert "removed" in events and "added" in events
    assert console_errors(browser) == []


def test_a_lease_taken_with_curl_is_shown_and_only_an_admin_ends_it(browser):
    device = device_id("lab-sourcesink")
    taken = subprocess.run(
        ["curl", "-sS", "-X", "POST", "-H", f"Authorization: Bearer {TOKENS['transfer']}",
         f"{URL}/v1/devices/{device}/leases?ttl_ms=600000"],
        check=True, capture_output=True, text=True)
    lease = json.loads(taken.stdout)
    assert lease["holder"] == "bench-ci", taken.stdout

    def lease_row():
        found = browser.find_elements(By.CSS_SELECTOR, f'#leases tr[data-lease="{lease["id"]}"]')
        return found[0] if found else None

    wait_for(lease_row, "the lease is listed")
    wait_for(lambda: lease_row().find_element(By.CSS_SELECTOR, ".holder").text == "bench-ci", "its holder")
    wait_for(lambda: lease_row().find_element(By.CSS_SELECTOR, ".left").text in ("10 min", "9 min"), "its time left")
    wait_for(lambda: "leased · bench-ci" in rows(browser)["lab-sourcesink"]["text"], "the device shows its holder")
    open_device(browser, "lab-sourcesink")
    wait_for(lambda: "bench-ci" in browser.find_element(By.ID, "detail").text, "the device's lease in its details")
    browser.save_screenshot(str(SHOTS / "bench-page.png"))

    # A transfer token sees the lease but is offered no way to end another's, and the API refuses it.
    sign_in(browser, TOKENS["transfer"])
    wait_for(lease_row, "the lease is listed for the transfer token")
    wait_for(lambda: lease_row().find_elements(By.TAG_NAME, "button") == [], "no button to end another's lease")
    refused = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(`/v1/leases/${arguments[0]}?force=true`, {method: 'DELETE',"
        " headers: {Authorization: `Bearer ${sessionStorage.getItem('usbhttpd.token')}`}}).then(r => done(r.status));",
        lease["id"])
    assert refused == 403
    assert console_errors(browser, allowed=("403",)) == []

    # The admin ends it from the page.
    sign_in(browser, TOKENS["admin"])
    wait_for(lease_row, "the lease is listed for the admin")
    wait_for(lambda: lease_row().find_element(By.TAG_NAME, "button").click() or True, "the End button is clicked")
    wait_for(lambda: lease_row() is None, "the ended lease leaves the page")
    status, listing, _ = api("GET", "/v1/leases", TOKENS["read"])
    assert status == 200 and listing["leases"] == []
    wait_for(lambda: "leased" not in rows(browser)["lab-sourcesink"]["text"], "the device shows no holder")
    assert console_errors(browser) == []


def test_a_transfer_token_leases_claims_and_releases_from_the_page(browser):
    sign_in(browser, TOKENS["transfer"])
    open_device(browser, "lab-loopback")

    def click(label):
        wait_for(lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "#detail button") if b.text == label][0].click()
                 or True, f"'{label}' is clicked")

    detail = lambda: browser.find_element(By.ID, "detail").text

    def seconds_left():  # until the one lease's end, by the daemon's clock (its Date header)
        _, listing, fields = api("GET", "/v1/leases", TOKENS["read"])
        end = datetime.fromisoformat(listing["leases"][0]["expires_at"].replace("Z", "+00:00"))
        return (end - parsedate_to_datetime(fields["Date"])).total_seconds()

    click("Take lease")
    wait_for(lambda: "Release my lease" in detail(), "the page holds the lease")
    wait_for(lambda: "leased · bench-ci" in rows(browser)["lab-loopback"]["text"], "the tree shows the lease")
    assert 9 * 60 < seconds_left() <= 10 * 60 + 1, "taken for the page's default, ten minutes"
    # Renewed from the page for the length chosen there: an hour from the renewal.
    wait_for(lambda: Select(browser.find_element(By.CSS_SELECTOR, "#detail select[aria-label='Lease length']"))
             .select_by_visible_text("1 hour") or True, "an hour is chosen")
    click("Renew")
    wait_for(lambda: "renewed" in browser.find_element(By.ID, "events").text, "the renewal is made")
    assert 59 * 60 < seconds_left() <= 60 * 60 + 1, "renewed for the hour chosen"
    # Read in one go in the page (the list is drawn again as events come: elements go stale).
    wait_for(lambda: browser.execute_script(
        "return [...document.querySelectorAll('#leases button')].map((b) => b.textContent)") == ["Renew", "Release"],
        "the tab's own lease offers Renew and Release")
    click("Claim")
    wait_for(lambda: "claimed, alt 0" in detail(), "interface 0 claimed")
    wait_for(lambda: "claimed 0" in rows(browser)["lab-loopback"]["text"], "the tree shows the claim")
    status, claims, _ = api("GET", f"/v1/devices/{rows(browser)['lab-loopback']['id']}/claims", TOKENS["read"])
    assert status == 200 and [c["interface"] for c in claims["claims"]] == [0]
    click("Release")
    wait_for(lambda: "claimed" not in rows(browser)["lab-loopback"]["text"], "the claim released")
    click("Release my lease")
    wait_for(lambda: "leased" not in rows(browser)["lab-loopback"]["text"], "the lease released")
    assert api("GET", "/v1/leases", TOKENS["read"])[1]["leases"] == []
    # A transfer token is offered no reset (the admin's), and its raw descriptor bytes unfold.
    assert "Reset" not in [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#detail button")]
    browser.find_element(By.CSS_SELECTOR, "#detail details.raw summary").click()
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, "#detail pre.hex").text.startswith("0000  12 01 00 02"),
             "the device descriptor's bytes")
    assert console_errors(browser) == []

    # The admin is offered a reset, and it is made.
    sign_in(browser, TOKENS["admin"])
    open_device(browser, "lab-loopback")
    click("Reset")
    device = rows(browser)["lab-loopback"]["id"]
    wait_for(lambda: f"done POST /v1/devices/{device}/reset" in browser.find_element(By.ID, "events").text,
             "the reset is made", 20)
    wait_for(lambda: "lab-loopback" in rows(browser), "the reset device is listed")
    assert console_errors(browser) == []


def test_a_claim_made_before_the_page_loaded_shows_and_its_release_too(browser):
    device = device_id("lab-sourcesink")
    status, _, _ = api("POST", f"/v1/devices/{device}/interfaces/0/claim", TOKENS["transfer"])
    assert status == 200
    try:
        sign_in(browser, TOKENS["admin"])  # a fresh load: the claim was made before it
        wait_for(lambda: "claimed 0" in rows(browser)["lab-sourcesink"]["text"], "a claim made before the page")
        open_device(browser, "lab-sourcesink")
        wait_for(lambda: "claimed, alt 0" in browser.find_element(By.ID, "detail").text, "the claim in the details")
    finally:
        status, _, _ = api("DELETE", f"/v1/devices/{device}/interfaces/0/claim", TOKENS["transfer"])
    assert status == 200
    wait_for(lambda: "claimed" not in rows(browser)["lab-sourcesink"]["text"], "the release shows")
    assert console_errors(browser) == []


def test_a_running_stream_shows_with_its_throughput(browser):
    device = device_id("lab-sourcesink")
    auth = {"Authorization": f"Bearer {TOKENS['transfer']}"}
    assert api("POST", f"/v1/devices/{device}/interfaces/0/claim", TOKENS["transfer"])[0] == 200
    stream = subprocess.Popen(
        ["curl", "-sSN", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-H",
         f"Authorization: {auth['Authorization']}", f"{URL}/v1/devices/{device}/endpoints/129/stream?duration_ms=6000"],
        stdout=subprocess.PIPE, text=True)
    try:
        shown = lambda: rows(browser)["lab-sourcesink"]["text"]
        wait_for(lambda: "1 stream · " in shown() and ("kB/s" in shown() or "MB/s" in shown()),
                 "the stream and its throughput", 6)
        assert "1 stream open" in browser.find_element(By.ID, "events").text
    finally:
        answer = stream.communicate(timeout=30)[0]
    status, size = answer.split()
    assert status == "200" and int(size) > 0, answer
    wait_for(lambda: "stream" not in rows(browser)["lab-sourcesink"]["text"], "the stream's end")
    assert api("DELETE", f"/v1/devices/{device}/interfaces/0/claim", TOKENS["transfer"])[0] == 200
    assert console_errors(browser) == []


def test_a_devices_html_strings_show_as_text(browser):
    serial = '<img src=x onerror="window.__pwned=1">'
    product = "<script>window.__pwned=2</script>"
    manufacturer = '"><svg onload=window.__pwned=3><b>bold</b>'
    # A function no other lab gadget uses: a function's string ids are the module's, shared by
    # its instances, and binding a second gadget with Loopback would renumber the lab's
    # loopback gadget's interface string (lsusb then reads "(error)" for it).
    g = "/sys/kernel/config/usb_gadget/hostile"
    guest(f"""set -e
        "$LAB_RUN/modprobe" usb_f_serial
        mkdir -p {g}/strings/0x409 {g}/configs/c.1
        echo 0x1209 > {g}/idVendor; echo 0x0031 > {g}/idProduct
        printf '%s' {shlex.quote(serial)} > {g}/strings/0x409/serialnumber
        printf '%s' {shlex.quote(product)} > {g}/strings/0x409/product
        printf '%s' {shlex.quote(manufacturer)} > {g}/strings/0x409/manufacturer
        [ -d {g}/functions/gser.hostile ] || mkdir {g}/functions/gser.hostile
        [ -e {g}/configs/c.1/gser.hostile ] || ln -s {g}/functions/gser.hostile {g}/configs/c.1/
        for other in /sys/kernel/config/usb_gadget/*; do
          [ "$(cat $other/UDC)" = dummy_udc.4 ] && echo "" > $other/UDC
        done
        echo dummy_udc.4 > {g}/UDC""")
    try:
        wait_for(lambda: serial in rows(browser), "the hostile device is listed with its serial as text", 20)
        assert rows(browser)[serial]["name"] == product
        open_device(browser, serial)
        wait_for(lambda: manufacturer in browser.find_element(By.ID, "detail").text, "its manufacturer as text")
        assert browser.find_elements(By.CSS_SELECTOR, "#devices img, #devices script, #devices svg, #detail img, "
                                                      "#detail script, #detail svg, #detail b") == []
        assert browser.execute_script("return window.__pwned === undefined")
        assert no_csp_violations(browser)
        assert console_errors(browser) == []
    finally:
        guest(f'echo "" > {g}/UDC; rm {g}/configs/c.1/gser.hostile; rmdir {g}/functions/gser.hostile '
              f"{g}/configs/c.1 {g}/strings/0x409 {g}")
    wait_for(lambda: serial not in rows(browser), "the hostile device leaves")


def test_a_console_opened_from_the_page_through_a_ticket(browser):
    run = guest('echo "$LAB_RUN"').strip()
    board = start_board(run)
    try:
        wait_for(lambda: "lab-ftdi" in rows(browser), "the FTDI chip is listed")
        open_device(browser, "lab-ftdi")
        opener = lambda: [b for b in browser.find_elements(By.CSS_SELECTOR, "#detail button") if b.text == "Open console"]
        wait_for(lambda: opener() and (opener()[0].click() or True), "the device's console opens")
        output = lambda: browser.find_element(By.ID, "console-output").text
        wait_for(lambda: "board>" in output(), "the board's boot log, kept by the daemon", 20)
        assert "Starting kernel" in output()
        field = browser.find_element(By.ID, "console-input")
        field.send_keys("echo typed in the page" + Keys.ENTER)
        wait_for(lambda: "typed in the page\nboard>" in output(), "the board answers what the page typed", 20)
        browser.save_screenshot(str(SHOTS / "bench-page-console.png"))
        browser.find_element(By.ID, "console-close").click()
        assert console_errors(browser) == []
        assert no_csp_violations(browser)
    finally:
        board.kill()
        board.wait()


def test_the_page_says_when_the_daemon_goes_away_and_recovers(browser, figures):
    guest(os.environ["PAGE_DAEMON_STOP"])
    wait_for(lambda: "unreachable" in link(browser), "the page says the daemon is gone", 20)
    assert "offline" in browser.find_element(By.TAG_NAME, "body").get_attribute("class")
    started = time.monotonic()
    guest(os.environ["PAGE_DAEMON_START"])
    wait_for(lambda: link(browser) == "live", "the page is live again", 30)
    wait_for(lambda: all(serial in rows(browser) for serial in LAB_DEVICES), "the devices are back", 10)
    figures["live_after_restart_s"] = round(time.monotonic() - started, 3)
    # The outage's failed fetches are the browser's to report; nothing else.
    assert console_errors(browser, allowed=("net::ERR_", "Failed to fetch")) == []

    # A narrow window: one column, nothing wider than the window.
    browser.set_window_size(420, 900)
    wait_for(lambda: browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling when narrow", 5)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(SHOTS / "bench-page-narrow.png"))
    browser.set_window_size(1400, 1000)
