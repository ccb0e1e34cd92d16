"""The claims domain: money, the claim lifecycle and the payout policy.

Pure on purpose: nothing here reads files, clocks, the network or a database, and nothing imports the
API, workers, storage, training or model packages. Decisions that touch a customer's money must be
readable, and testable, on their own; the layers around this package do the I/O and hand the results
in (a policy file's text, grade probabilities, ``now``).
"""
