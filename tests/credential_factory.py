"""Real credentials for tests: vaccine certificates signed by a test signer, CCCD texts."""

from __future__ import annotations

from kiosk.credentials.issuer import VACCINATION_OID, VIETNAMESE_DCC, Issuer, hc1_from_cose  # noqa: F401

CCCD = "001090123456||NGUYỄN VĂN AN|01011990|Nam|Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh|15042021"
CCCD_FEMALE = "079191000123|012345678|TRẦN THỊ NGỌC|02031991|Nữ|Hà Nội|01012022"
