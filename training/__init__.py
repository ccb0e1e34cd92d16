"""Training side of the damage model: data, synthetic generator, networks, train, calibrate,
evaluate, export. Imports torch; never imported by serving code."""
