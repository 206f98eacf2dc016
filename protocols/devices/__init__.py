"""The device side of every protocol, for `tracker simulate` and tests: one module
per protocol (named as its codec module) exporting `DEVICE`, a
`protocols.base.DeviceSide`, and the frame builders and reply readers behind it.

The server never imports these; they use their codec module's wire format
(framers, checksums, constants), never the other way round.
"""
