"""Everything that touches a network: models, image sets, extraction, rendering, explain(). Never imports annotate."""
