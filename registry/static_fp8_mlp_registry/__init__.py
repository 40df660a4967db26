"""Registry for static-FP8 MLP Hub kernels: resolve fusion_config specs, validate the
endpoints, and fuse supported MLP modules (falling back to the original module)."""
