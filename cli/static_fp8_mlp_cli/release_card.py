"""The repository card (README.md on `main`) that `publish` writes.

It carries what kernel-builder's CARD.md template carries (front matter with
`library_name: kernels` and the license, a `get_kernel` snippet, the function list)
plus what a caller of this kernel needs: each endpoint's positional arguments, the
variants with their torch/CUDA versions and GPU architectures, and how a
`fusion_config` points at the repo.
"""

from __future__ import annotations

from .release_variants import BuildSpec, parse_variant


def render_card(
    *,
    spec: BuildSpec,
    repo_id: str,
    variants: dict[str, list[str]],
    kept_variants: list[str] = (),
    dev_build: bool = False,
) -> str:
    """`variants`: variant name -> archs of the variants this publish uploads;
    `kept_variants`: variants already on the branch that this publish leaves alone."""
    from static_fp8_mlp_registry.contract import ENDPOINTS, FAMILIES

    branch = f"v{spec.version}"
    lines: list[str] = ["---", "library_name: kernels"]
    if spec.license:
        lines.append(f"license: {spec.license.lower()}")
    lines += ["tags:", "- kernels", "- fp8", "- cuda", "---", ""]
    lines += [
        f"# {spec.name}",
        "",
        "Fused static-FP8 MLP kernels for the Hugging Face Kernel Hub: per-tensor input",
        "quantization with a channel scale, gated (SwiGLU/GeGLU) and dense GELU MLPs with FP8",
        "weights and static activation scales, each one kernel launch per GEMM with the",
        "activation and re-quantization fused into the epilogue.",
        "",
        f"Version {spec.version} lives on the branch `{branch}`; its endpoints keep their names",
        "and positional arguments for as long as the version does.",
        "",
    ]
    if dev_build:
        lines += [
            "> **Development build.** These binaries come from a local (non-Nix) build and are",
            "> not manylinux_2_28 compliant: they run only on systems like the one that built",
            "> them. Published builds come from `nix build .#bundle`.",
            "",
        ]
    first = next(iter(ENDPOINTS.values()))
    lines += [
        "## How to use",
        "",
        "```python",
        "# pip install -U kernels",
        "from kernels import get_kernel",
        "",
        "# Pass trust_remote_code=True unless the publisher is a trusted kernel publisher.",
        f'mlp = get_kernel("{repo_id}", version={spec.version}, trust_remote_code=True)',
        f"out = mlp.{first.name}({', '.join(first.params)})",
        "```",
        "",
        "Every endpoint also takes `out=` (a preallocated result) and returns the result.",
        "",
        "To route a model's static-FP8 MLPs through these kernels, point the `fusion_config`",
        "entries of the three endpoint families at this repo:",
        "",
        "```python",
        "fusion_config = {",
        '    "static_quantized_mlp": {',
        *[
            f'        "{f}": {{"repo_id": "{repo_id}", "version": {spec.version}, "trust_remote_code": True}},'
            for f in FAMILIES
        ],
        "    }",
        "}",
        "```",
        "",
        "## Endpoints",
        "",
        "| function | family | positional arguments |",
        "| --- | --- | --- |",
    ]
    for ep in ENDPOINTS.values():
        lines.append(f"| `{ep.name}` | {ep.family} | `{', '.join(ep.params)}` |")
    lines += [
        "",
        "## Build variants",
        "",
        "| variant | torch | CUDA | architectures |",
        "| --- | --- | --- | --- |",
    ]
    for name in sorted(variants):
        v = parse_variant(name)
        torch_v = f"{v.torch[0]}.{v.torch[1]}" if v else "?"
        cuda_v = v.cuda_str if v else "?"
        lines.append(f"| `{name}` | {torch_v} | {cuda_v} | {', '.join(variants[name]) or '-'} |")
    for name in sorted(kept_variants):
        v = parse_variant(name)
        torch_v = f"{v.torch[0]}.{v.torch[1]}" if v else "?"
        cuda_v = v.cuda_str if v else "?"
        lines.append(f"| `{name}` | {torch_v} | {cuda_v} | (earlier upload; see its metadata.json) |")
    lines += [
        "",
        "A device whose compute capability no architecture covers gets a clear error from",
        "`get_kernel` (`check_arch`) and from the endpoints.",
        "",
    ]
    return "\n".join(lines)
