"""Bluetooth helpers for the VM's checks, run with the installed kiosk's python (its beacon package).

    bt.py listen hciN SECONDS      print the Bluezone IDs heard on hciN as a JSON list
    bt.py phones hciA hciB ...     advertise one random Bluezone ID per controller (simulated phones);
                                   print the IDs as a JSON list, then keep advertising until killed

A phone advertises continuously, so a scan that starts at any moment hears it. BlueZ's emulator
(btvirt's btdev, 5.66) does not: it delivers a legacy advert only when advertising is enabled (to the
controllers scanning at that moment) and when a legacy scan is enabled (from the controllers
advertising then). The kernel scans with the extended commands on these 5.0 controllers (so does
bluepy, through mgmt discovery), and btdev does not report legacy adverts that were already running
when an extended scan starts. So a phone that started between two of the kiosk's scans was never
heard, and whether one did depended on timing (nearby-bluepy counted 0 phones within 240 s once,
under load). The simulated phones therefore re-enable advertising every REPEAT_S, each time an
"advertising event" btdev delivers to whoever scans then: the same ID from the same address, as a
real phone's stream of adverts.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from beacon.advert import bluezone_advert, bluezone_id_from_ad
from beacon.hci import ADV_NONCONN_IND, Controller, HciError, interval_units, non_resolvable_address
from beacon.transport import AdapterMissing, open_transport

REPEAT_S = 0.5  # how often a simulated phone's advert reaches the controllers scanning (see above)


def listen(device: str, seconds: float) -> list[str]:
    controller = Controller(open_transport(device))
    try:
        controller.reset()
        controller.enable_le_events()
        controller.set_scan_params()
        controller.set_scan_enable(True)
        heard = {bid.hex().upper() for r in controller.advertising_reports(seconds)
                 if (bid := bluezone_id_from_ad(r.data)) is not None}
        controller.set_scan_enable(False)
        return sorted(heard)
    finally:
        controller.close()


class Phone:
    """One simulated phone on its own controller: one Bluezone ID, one random address."""

    def __init__(self, device: str):
        self.device = device
        self.bluezone_id = os.urandom(12)
        self.address = non_resolvable_address()
        self.controller = Controller(open_transport(device))
        self.setup()

    def setup(self) -> None:
        controller = self.controller
        controller.reset()
        version = controller.read_local_version()
        controller.set_random_address(self.address)
        controller.set_adv_params(interval_units(100), version.hci_version, ADV_NONCONN_IND)
        controller.set_adv_data(bluezone_advert(self.bluezone_id))
        controller.set_adv_enable(True)

    def advertise_again(self) -> None:
        """Advertising off and on: btdev delivers the advert to every controller scanning now."""
        try:
            self.controller.set_adv_enable(False)
            self.controller.set_adv_enable(True)
        except (HciError, AdapterMissing):  # bluetoothd or the kernel changed this controller, or it was slow: start over
            self.setup()

    def stop(self) -> None:
        try:
            self.controller.set_adv_enable(False)
        except HciError:
            pass
        self.controller.close()


def main(argv: list[str]) -> int:
    if argv[0] == "listen":
        print(json.dumps(listen(argv[1], float(argv[2]))))
        return 0
    phones = [Phone(device) for device in argv[1:]]
    print(json.dumps([p.bluezone_id.hex().upper() for p in phones]), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(REPEAT_S)
            for p in phones:
                p.advertise_again()
    finally:
        for p in phones:
            p.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
