#!/bin/sh
# DashFleet: this install link cannot be used; this script says why and installs nothing.
printf 'dashfleet: %s\n' @MESSAGE@ "nothing was installed" >&2
exit 1
