"""Developer and release tooling for the static-fp8-mlp Hub kernel (`static-fp8-mlp` CLI)."""
