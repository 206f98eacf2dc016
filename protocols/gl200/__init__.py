"""Queclink @Track protocol ("gl200"): GL/GV/GB trackers, text and binary reports.

See `session` for replies and commands, `framing` for the wire format,
`text`, `reports` and `vehicle` for the text reports, `binary` for the
binary ones and `device` for the device side used by the simulator.
"""

from protocols.gl200.device import DEVICE, Gl200Device
from protocols.gl200.session import CODEC, Gl200Codec, Gl200Session

__all__ = ["CODEC", "DEVICE", "Gl200Codec", "Gl200Device", "Gl200Session"]
