"""station-api's service layer: settings, login sessions, users, audit log, fleet view, host."""
