"""What the crowd workflow tells the layers above it. Crowd never imports them: they connect here."""

from django.dispatch import Signal

# Sent inside the transaction that stored, approved or rejected answers, with ``unit_ids`` (a set of
# Unit ids whose answers changed). Receivers that start work should do so on commit.
answers_changed = Signal()

# Sent to ask for the consensus concept of units (``unit_ids``): receivers return {unit id: concept
# text} for the units that have one. The labels layer answers with its aggregated crowd labels.
consensus_requested = Signal()
