# DashFleet: this install link cannot be used; this script says why and installs nothing.
throw (@MESSAGE@ + ' Nothing was installed.')
