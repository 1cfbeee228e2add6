"""The rules: liveness, expiry, isolation, retention, accounts. Routes and pages call these."""
