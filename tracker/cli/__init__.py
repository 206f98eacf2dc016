"""The `tracker` command: serve, migrate, device, user, command, group, geofence,
calendar, rule, organisation, notification, quarantine, simulate, replay.

One module per command group, each with a ``register(commands, configured)``
that adds its subcommands and binds each to its handler with
``set_defaults(handler=...)``; `main` parses and calls the handler:

- `tracker.cli.parser`: the top-level parser and `main`;
- `tracker.cli.common`: handler wrappers (`with_store`, `with_config`) and
  the output helpers the groups share;
- `tracker.cli.server`: serve, migrate;
- `tracker.cli.devices`: device, user, command;
- `tracker.cli.configuration`: group, geofence, calendar, rule, organisation;
- `tracker.cli.notifications`, `tracker.cli.quarantine`;
- `tracker.cli.tools`: simulate, replay (no configuration, no database).

The configuration commands (group, device set, geofence, calendar, rule,
organisation) validate with `tracker.editing`, as the REST API does, and act on
the database unscoped (as an administrator); new objects go to the default
organisation.  A running server notices their changes by polling the
configuration revision.  Lists print one tab-separated line per object (as
``device list``); ``show`` prints the object as JSON (the API's shape, so a shown
rule can be edited and added again).  Invalid input, an unknown id and an object
still in use are reported on stderr with exit status 2, as are usage errors and
an invalid configuration.
"""

from tracker.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
