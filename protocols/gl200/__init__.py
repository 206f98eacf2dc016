"""Queclink @Track protocol ("gl200"): GL, GV and GB series trackers.

Spec followed: Queclink "@Track Air Interface Protocol" documents for the
GL200/GL300 (TRACGL300AN001 rev. 1.02), GV200 (TRACGV200AN003), GV300
(TRACGV300AN002) and the GV350M / GV50M series (V3.11 / V17.12) for the
text reports, SACK and commands; the binary ("HEX") report format only as
far as the captures of Traccar's test suite show it.  Where a layout is
known only from captures, the decoder says so ("observed").

Transports: TCP (`receive_data`, a byte stream) and UDP (`receive_datagram`,
one datagram of whole frames), both on port 5004 as in Traccar.

Framing (`framing`): text frames start with "+RESP:", "+BUFF:" (buffered
while out of coverage) or "+ACK:" and end with "$" (old firmware: CR LF);
comma-separated ISO-8859-1 fields, no escaping, no checksum (the last field
is the count number, a serial).  Binary frames start with "+RSP", "+BSP",
"+EVT", "+BVT", "+INF", "+BNF", "+ACK", "+HBD" (or "+" 00 00) and carry
their total length; their trailing checksum is not verified.  Frames are
capped at `framing.MAX_FRAME_BYTES`; garbage before a "+" is skipped.

Dialects: the protocol version field (device type code + firmware version)
selects nothing by itself; layouts are recognised by their fields, with a
few per-model rules (`common.Model`: GV200 digital I/O bytes, the GT501 /
Bolt FRI preamble).  Reports with a layout of their own are decoded in
`reports` (FRI, RTL, ERI, IGN/IGF/VGN/VGF, IDA, LSW/TSW, DAR, DAT,
BAA/BID), `vehicle` (CAN, OBD) and `text` (INF, VER, PNA/PFA, GSM, WIF,
DTT); every other report (SOS, SPD, GEO, TOW, STT, BPL, HBM, NMR, ...)
and any frame a specific decoder does not recognise goes through the
generic decoder, which takes the frame's first GPS item.

Time zone and units: all times are UTC (GPS UTC time and send time,
YYYYMMDDhhmmss).  Speed arrives in km/h and is stored in knots; altitude in
metres; mileage in km with one decimal, stored as "odometer" in metres; hour
meter "HHHHH:MM:SS", stored as "hours" in milliseconds; voltages in mV,
stored as V ("power", "power2", "adcN") except where Traccar keeps the
binary reports' raw mV; battery as % ("batteryLevel") or V ("battery").
GPS accuracy is stored as "hdop"; as in Traccar, a record keeps `valid`
true for accuracy 0 (last known position) except in GTCAN and binary
reports.

Replies and commands: see `session`; the device side for the simulator:
see `protocols.devices.gl200`.
"""

from protocols.gl200.session import CODEC, Gl200Session

__all__ = ["CODEC", "Gl200Session"]
