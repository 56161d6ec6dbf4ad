"""The side-by-side comparison of eager and symbolic execution: zoo, harness, CLI."""
