"""GT06 captures shared by the GT06 tests, and an independent CRC.

Captures: Traccar's test suite (Apache License 2.0).
"""

LOGIN = bytes.fromhex("78780d01086471700328358100093f040d0a")
LOCATION = bytes.fromhex("78781f120f0a140e150bc505e51e780293a9e800540000f601006e0055da00035f240d0a")
LONG_INFO = bytes.fromhex("79790008940b02e3048614200d0a")   # 0x7979 information frame


def crc_x25(data: bytes) -> int:
    """CRC-16/X-25 bit by bit (independent of the codec)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF
