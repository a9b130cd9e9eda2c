"""The `hf-resnet101` commands and the training entry point: each reads its options and calls the capabilities."""
