{
  description = "static-fp8-mlp: fused static-FP8 MLP kernels for the Hugging Face Kernel Hub";

  inputs = {
    # Pinned to a specific kernel-builder commit so every build is reproducible;
    # bump deliberately (and re-run the CI matrix) rather than following a branch.
    kernel-builder.url = "github:huggingface/kernels/8ac69fc542a4306eade0759ef7c45b4f2ae57df0";
  };

  outputs =
    { self, kernel-builder, ... }:
    kernel-builder.lib.genKernelFlakeOutputs {
      inherit self;
      path = ./.;
    };
}
