"""The fusion report: which MLP modules were fused, which were not, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ModuleDecision:
    name: str
    """Qualified module name in the model ('' for the root)."""
    pattern: str
    """'gated_mlp' or 'dense_gelu_mlp' (or the layout that was recognised)."""
    fused: bool
    reason: str = ""
    """Why it was not fused (empty when fused)."""
    module_type: str = ""
    activation: str | None = None
    linear_type: str | None = None
    scales: str | None = None
    """Weight-scale scheme used, e.g. 'per-tensor' or 'per-row (gate/up scales differ)'."""
    shape: tuple[int, int, int] | None = None
    """(K, H, N)."""
    endpoint: str | None = None
    """Kernel function the fused module calls."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape"] = list(self.shape) if self.shape else None
        return d


@dataclass
class KernelSummary:
    family: str
    spec: str
    ok: bool
    resolved: dict[str, Any] | None = None
    validation: str | None = None
    error: str | None = None
    error_kind: str | None = None

    def line(self) -> str:
        if not self.ok:
            return f"FAILED: {self.error_kind}: {self.error}"
        r = self.resolved or {}
        where = r.get("repo_id") or r.get("variant_path")
        rev = r.get("revision")
        rev = f"@{rev[:12]}" if rev else (f"@{r.get('requested')}" if r.get("repo_id") else "")
        shared = " (shared build)" if r.get("shared_with") else ""
        return f"{where}{rev} [{r.get('variant')}, {r.get('source')}]{shared}; {self.validation}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FusionReport:
    enabled: bool
    dry_run: bool = False
    kernels: dict[str, KernelSummary] = field(default_factory=dict)
    modules: list[ModuleDecision] = field(default_factory=list)
    error: str | None = None
    """Set when a kernel failed to resolve/validate and the model was left untouched."""

    @property
    def fused(self) -> list[ModuleDecision]:
        return [m for m in self.modules if m.fused]

    @property
    def not_fused(self) -> list[ModuleDecision]:
        return [m for m in self.modules if not m.fused]

    @property
    def fused_names(self) -> list[str]:
        return [m.name for m in self.fused]

    def decision(self, name: str) -> ModuleDecision:
        for m in self.modules:
            if m.name == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dry_run": self.dry_run,
            "error": self.error,
            "fused": len(self.fused),
            "not_fused": len(self.not_fused),
            "kernels": {k: v.to_dict() for k, v in self.kernels.items()},
            "modules": [m.to_dict() for m in self.modules],
        }

    def headline(self) -> str:
        if not self.enabled:
            return "static-fp8-mlp fusion: disabled by fusion_config (model unchanged)"
        verb = "would fuse" if self.dry_run else "fused"
        by = {}
        for m in self.fused:
            by[m.pattern] = by.get(m.pattern, 0) + 1
        per = ", ".join(f"{k}: {v}" for k, v in sorted(by.items()))
        head = f"static-fp8-mlp fusion: {verb} {len(self.fused)} of {len(self.modules)} MLP modules"
        if per:
            head += f" ({per})"
        if self.error:
            head += " -- model left unchanged, a kernel is unavailable"
        return head

    def __str__(self) -> str:
        lines = [self.headline()]
        if self.error:
            lines.append(f"error: {self.error}")
        if self.kernels:
            lines.append("kernels:")
            for fam, ks in self.kernels.items():
                lines.append(f"  {fam:<15} {ks.spec}: {ks.line()}")
        if self.modules:
            rows = [("module", "pattern", "act", "scales", "result")]
            for m in self.modules:
                result = f"fused -> {m.endpoint}" if m.fused else f"not fused: {m.reason}"
                rows.append((m.name or "<root>", m.pattern, m.activation or "-", m.scales or "-", result))
            widths = [max(len(r[i]) for r in rows) for i in range(4)]
            for r in rows:
                lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4])
        elif self.enabled:
            lines.append("  (no gated or dense MLP modules found)")
        return "\n".join(lines)
