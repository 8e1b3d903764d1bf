"""SLA clocks: business-time arithmetic and the response and resolution clocks of a ticket."""
