"""Traffic from carriers: delivery receipts, and (later) subscriber replies."""
