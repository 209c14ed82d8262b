"""The fleet view against three daemons in the lab, each serving one bus, found through one
name that resolves to all of them (a hosts entry standing in for a headless Service's DNS
name) plus one address where nothing answers. Run by Tests/LabTests/FleetTests.swift with
FLEET_NAME, FLEET_PORT and the tokens FLEET_TOKEN_1/2; skipped elsewhere."""
import os

import pytest

from usbhttpd import ProblemError
from usbhttpd.fleet import Fleet

NAME = os.environ.get("FLEET_NAME")
PORT = int(os.environ.get("FLEET_PORT", "0"))
pytestmark = pytest.mark.skipif(not NAME, reason="needs the lab's fleet (FLEET_NAME)")
NODES = {"node-a", "node-b", "node-c"}


def fleet(token_variable="FLEET_TOKEN_1"):
    # Plain HTTP: the lab's fleet serves on loopback addresses (127.0.0.2-5), where a token
    # may go without TLS.
    return Fleet.from_service(NAME, port=PORT, scheme="http", token=os.environ[token_variable], timeout=5)


def test_the_name_resolves_to_every_daemon_and_a_silent_one_is_reported():
    with fleet() as f:
        assert len(f.clients) == 4
        devices = f.devices()
        assert {d["node"] for d in devices} == NODES, devices
        assert len(f.unreachable) == 1, f.unreachable
        (silent,) = f.unreachable
        assert silent.startswith("http://127.0.0.5:"), f.unreachable


def test_devices_carry_their_node_and_daemon():
    with fleet() as f:
        by_serial = {d["serial"]: d for d in f.devices() if (d.get("serial") or "").startswith("lab-")}
        assert by_serial["lab-sourcesink"]["node"] == "node-a"
        assert by_serial["lab-loopback"]["node"] == os.environ["FLEET_LOOPBACK_NODE"]
        assert by_serial["lab-sourcesink"]["url"].startswith("http://127.0.0.2:")
        assert f.devices(serial="lab-ffs") == [], "the gadget's bus is no fleet daemon's"


def test_find_by_serial_and_two_racers_for_one_lease():
    with fleet("FLEET_TOKEN_1") as one, fleet("FLEET_TOKEN_2") as two:
        device = one.find(serial="lab-loopback")
        assert device.describe()["node"] == os.environ["FLEET_LOOPBACK_NODE"]
        device.close()
        with pytest.raises(LookupError):
            one.find(serial="no-such-board")
        with pytest.raises(LookupError):
            one.find(vendor_id=0x1209)  # two boards: sourcesink and loopback
        held, lease = one.lease(serial="lab-loopback", ttl_ms=20000)
        try:
            with pytest.raises(ProblemError) as refused:
                two.lease(serial="lab-loopback", ttl_ms=20000)
            assert refused.value.status == 423 and refused.value.code == "lease-held"
            assert "ci-1" in refused.value.detail, refused.value.detail
        finally:
            lease.release()
            held.close()
        # Released: now the other one gets it.
        taken, second = two.lease(serial="lab-loopback", ttl_ms=20000)
        assert second.details["holder"] == "ci-2"
        second.release()
        taken.close()
