"""Bluetooth helpers for the VM's checks, run with the installed kiosk's python (its beacon package).

    bt.py listen hciN SECONDS      print the Bluezone IDs heard on hciN as a JSON list
    bt.py phones hciA hciB ...     advertise one random Bluezone ID per controller (simulated phones);
                                   print the IDs as a JSON list, then keep advertising until killed
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from beacon.advert import bluezone_advert, bluezone_id_from_ad
from beacon.hci import ADV_NONCONN_IND, Controller, interval_units, non_resolvable_address
from beacon.transport import open_transport


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


def phone(device: str) -> tuple[Controller, str]:
    controller = Controller(open_transport(device))
    controller.reset()
    version = controller.read_local_version()
    controller.set_random_address(non_resolvable_address())
    controller.set_adv_params(interval_units(100), version.hci_version, ADV_NONCONN_IND)
    bluezone_id = os.urandom(12)
    controller.set_adv_data(bluezone_advert(bluezone_id))
    controller.set_adv_enable(True)
    return controller, bluezone_id.hex().upper()


def main(argv: list[str]) -> int:
    if argv[0] == "listen":
        print(json.dumps(listen(argv[1], float(argv[2]))))
        return 0
    phones = [phone(device) for device in argv[1:]]
    print(json.dumps([bid for _, bid in phones]), flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(60)
    finally:
        for controller, _ in phones:
            controller.set_adv_enable(False)
            controller.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
