"""Options: their declarations and checks, the YAML + command-line parser, the presets with the product page's
tables, and the hardware rules, resolved once before a run starts."""
