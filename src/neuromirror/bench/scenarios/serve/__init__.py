"""Scenarios of ``neuromirror serve`` running for a while (issue 59): the service's own cost, side by side (:mod:`.soak`)."""
