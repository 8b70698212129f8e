"""What dissect asks of the layers above it without importing them."""

from django.dispatch import Signal

# Sent by the unit page with ``unit`` (a Unit): receivers return a list of label rows to show
# (objects with get_source_display, concept_text, get_category_display, precision, agreement,
# is_detector). The labels layer answers with its aggregated crowd labels.
unit_labels_requested = Signal()
