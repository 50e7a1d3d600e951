"""Networks, credit-assignment rules and training (see the learning issue)."""
