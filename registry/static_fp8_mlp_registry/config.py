"""`fusion_config`: which Hub kernels fuse which static-FP8 MLP patterns.

```python
fusion_config = {
    "static_quantized_mlp": {
        "input_quant": "owner/static-fp8-mlp",                 # repo id -> version 1
        "gated_mlp": {"repo_id": "owner/static-fp8-mlp", "version": 1},
        "dense_gelu_mlp": {"repo_id": "owner/static-fp8-mlp", "revision": "0123abc..."},
    }
}
```

Each entry is a repo id string `"owner/name"` or a mapping with the keys
`repo_id`, `version` (default 1), `revision`, `trust_remote_code` and the entry's
function-name overrides (`func` for `input_quant`; `swiglu_func`, `geglu_func` for
`gated_mlp`; `gelu_func` for `dense_gelu_mlp`), or `{"path": ".../build"}` for a local
build. `False`, `None` or a missing key disables an entry or the whole section; `True`
is refused (an explicit kernel configuration is required).

All models are pydantic v2, frozen. `FusionConfig.parse()` turns pydantic's
`ValidationError` into a `FusionConfigError` whose message names the offending key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from .contract import ENDPOINTS
from .errors import FusionConfigError

SECTION = "static_quantized_mlp"
FAMILY_KEYS = ("input_quant", "gated_mlp", "dense_gelu_mlp")
MLP_FAMILIES = ("gated_mlp", "dense_gelu_mlp")

_EXPLICIT = (
    "explicit Hub kernel configurations are required: give each entry a repo id, e.g. "
    "{'input_quant': 'owner/static-fp8-mlp', 'gated_mlp': 'owner/static-fp8-mlp', "
    "'dense_gelu_mlp': 'owner/static-fp8-mlp'}"
)

# Hub repo names: alphanumerics, '-', '_', '.'; no '--' or '..'; at most 96 characters.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REPO_ID_RE = re.compile(rf"^{_NAME}/{_NAME}$")


def check_repo_id(value: str) -> str:
    """Return `value` if it looks like a Hub repo id `owner/name`, else raise ValueError."""
    if (
        not isinstance(value, str)
        or not _REPO_ID_RE.match(value)
        or "--" in value
        or ".." in value
        or len(value) > 96
    ):
        raise ValueError(
            f"repo id {value!r} must look like 'owner/name' (letters, digits, '-', '_', '.'; "
            "e.g. 'kernels-community/static-fp8-mlp')"
        )
    return value


def is_repo_id(value: str) -> bool:
    try:
        check_repo_id(value)
    except ValueError:
        return False
    return True


class KernelSpec(BaseModel):
    """Where one kernel comes from, and which functions of it to call.

    This base class accepts every function-name override (it describes a whole
    `static-fp8-mlp` package, as `static-fp8-mlp resolve` does); the per-entry
    subclasses below accept only their own.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo_id: str | None = None
    version: int | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    path: str | None = None
    func: str | None = ENDPOINTS["channel_scale_quantize_fp8_static_bf16"].name
    swiglu_func: str | None = ENDPOINTS["fp8_swiglu_mlp_bf16"].name
    geglu_func: str | None = ENDPOINTS["fp8_geglu_mlp_bf16"].name
    gelu_func: str | None = ENDPOINTS["fp8_gelu_mlp_bf16"].name

    # function-name field -> contract endpoint it implements
    FUNCTION_FIELDS: ClassVar[dict[str, str]] = {
        "func": "channel_scale_quantize_fp8_static_bf16",
        "swiglu_func": "fp8_swiglu_mlp_bf16",
        "geglu_func": "fp8_geglu_mlp_bf16",
        "gelu_func": "fp8_gelu_mlp_bf16",
    }
    FAMILY: ClassVar[str | None] = None  # None: the whole package

    @classmethod
    def supported_keys(cls) -> list[str]:
        return ["repo_id", "version", "revision", "trust_remote_code", "path", *cls.FUNCTION_FIELDS]

    @classmethod
    def _where(cls) -> str:
        return f"'{cls.FAMILY}'" if cls.FAMILY else "a kernel spec"

    # ------------------------------------------------------------------ validators

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, KernelSpec):
            data = data.model_dump(exclude_unset=True)
        if data is True:
            raise ValueError(f"True is not a kernel configuration for {cls._where()}: {_EXPLICIT}")
        if isinstance(data, str):
            return {"repo_id": data, "version": 1}
        if isinstance(data, os.PathLike):
            return {"path": os.fspath(data)}
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{cls._where()} must be a repo id string 'owner/name' or a mapping with 'repo_id' "
                f"(or 'path'), got {type(data).__name__}: {data!r}"
            )
        data = dict(data)
        unknown = [k for k in data if k not in cls.supported_keys()]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ValueError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {names} in {cls._where()}; "
                f"supported keys: {', '.join(cls.supported_keys())}"
            )
        has_repo = data.get("repo_id") is not None
        has_path = data.get("path") is not None
        if not has_repo and not has_path:
            raise ValueError(
                f"{cls._where()} needs 'repo_id' (a Hub repo 'owner/name') or 'path' (a local build)"
            )
        version = data.get("version")
        revision = data.get("revision")
        if version is not None and revision is not None:
            raise ValueError(
                f"{cls._where()} sets both version={version!r} and revision={revision!r}; "
                "set one of them (version picks the branch v<N>, revision pins a branch, tag or commit)"
            )
        if has_path and (version is not None or revision is not None):
            raise ValueError(
                f"{cls._where()} sets 'path' together with 'version'/'revision'; a local build "
                "has neither (drop them, or use 'repo_id' for a Hub kernel)"
            )
        if has_repo and not has_path and version is None and revision is None:
            data["version"] = 1
        return data

    @field_validator("repo_id")
    @classmethod
    def _check_repo_id(cls, v: str | None) -> str | None:
        return None if v is None else check_repo_id(v)

    @field_validator("version", mode="before")
    @classmethod
    def _check_version(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool):
            raise ValueError(f"version must be an integer major version such as 1, got {v!r}")
        if isinstance(v, str):
            s = v.strip()
            s = s[1:] if s[:1] in ("v", "V") else s
            if not s.isdigit():
                raise ValueError(f"version must be an integer major version such as 1 (or 'v1'), got {v!r}")
            v = int(s)
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"version must be a non-negative integer major version, got {v!r}")
        return v

    @field_validator("revision")
    @classmethod
    def _check_revision(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("revision must be a non-empty branch, tag or commit sha")
        return v

    @field_validator("trust_remote_code", mode="before")
    @classmethod
    def _check_trust(cls, v: Any) -> Any:
        if not isinstance(v, bool):
            raise ValueError(f"trust_remote_code must be true or false, got {v!r}")
        return v

    @field_validator("func", "swiglu_func", "geglu_func", "gelu_func")
    @classmethod
    def _check_func(cls, v: str | None) -> str | None:
        if v is not None and not v.isidentifier():
            raise ValueError(f"function name {v!r} is not a Python identifier")
        return v

    @model_validator(mode="after")
    def _check_functions(self) -> "KernelSpec":
        if self.FAMILY == "input_quant" and self.func is None:
            raise ValueError("'input_quant' needs a function ('func' cannot be null)")
        if self.FAMILY is not None and not any(
            getattr(self, f) is not None for f in self.FUNCTION_FIELDS
        ):
            raise ValueError(
                f"every function of {self._where()} is disabled; set the entry to false to disable it"
            )
        return self

    # ------------------------------------------------------------------ helpers

    @property
    def is_local_path(self) -> bool:
        return self.path is not None

    def functions(self) -> dict[str, str]:
        """Contract endpoint name -> function name in the kernel module (enabled ones only)."""
        out = {}
        for field_name, endpoint in self.FUNCTION_FIELDS.items():
            fn = getattr(self, field_name)
            if fn is not None:
                out[endpoint] = fn
        return out

    def cache_key(self) -> tuple:
        """What identifies one resolution: (repo, version/revision, trust) or the real path."""
        if self.path is not None:
            return ("path", os.path.realpath(os.path.expanduser(self.path)))
        ref = f"v{self.version}" if self.revision is None else f"rev:{self.revision}"
        return ("hub", self.repo_id, ref, self.trust_remote_code)

    def describe(self) -> str:
        if self.path is not None:
            label = f" (as {self.repo_id})" if self.repo_id else ""
            return f"path {self.path}{label}"
        ref = f"@v{self.version}" if self.revision is None else f"@{self.revision}"
        trust = ", trust_remote_code=True" if self.trust_remote_code else ""
        return f"{self.repo_id}{ref}{trust}"

    def to_source(self) -> "KernelSpec":
        """The same source as a whole-package spec (function overrides dropped)."""
        return KernelSpec(
            **self.model_dump(include={"repo_id", "version", "revision", "trust_remote_code", "path"}, exclude_none=True)
        )


class InputQuantSpec(KernelSpec):
    FUNCTION_FIELDS: ClassVar[dict[str, str]] = {"func": "channel_scale_quantize_fp8_static_bf16"}
    FAMILY: ClassVar[str | None] = "input_quant"
    model_config = ConfigDict(extra="forbid", frozen=True)

    swiglu_func: None = None  # type: ignore[assignment]
    geglu_func: None = None  # type: ignore[assignment]
    gelu_func: None = None  # type: ignore[assignment]


class GatedMLPSpec(KernelSpec):
    FUNCTION_FIELDS: ClassVar[dict[str, str]] = {
        "swiglu_func": "fp8_swiglu_mlp_bf16",
        "geglu_func": "fp8_geglu_mlp_bf16",
    }
    FAMILY: ClassVar[str | None] = "gated_mlp"
    model_config = ConfigDict(extra="forbid", frozen=True)

    func: None = None  # type: ignore[assignment]
    gelu_func: None = None  # type: ignore[assignment]


class DenseGeluMLPSpec(KernelSpec):
    FUNCTION_FIELDS: ClassVar[dict[str, str]] = {"gelu_func": "fp8_gelu_mlp_bf16"}
    FAMILY: ClassVar[str | None] = "dense_gelu_mlp"
    model_config = ConfigDict(extra="forbid", frozen=True)

    func: None = None  # type: ignore[assignment]
    swiglu_func: None = None  # type: ignore[assignment]
    geglu_func: None = None  # type: ignore[assignment]


SPEC_CLASSES: dict[str, type[KernelSpec]] = {
    "input_quant": InputQuantSpec,
    "gated_mlp": GatedMLPSpec,
    "dense_gelu_mlp": DenseGeluMLPSpec,
}


class StaticQuantizedMLPConfig(BaseModel):
    """The `static_quantized_mlp` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_quant: InputQuantSpec | None = None
    gated_mlp: GatedMLPSpec | None = None
    dense_gelu_mlp: DenseGeluMLPSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, StaticQuantizedMLPConfig):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(
                f"'{SECTION}' must be a mapping of {', '.join(FAMILY_KEYS)} to kernel specs "
                f"(or false to disable it), got {type(data).__name__}: {data!r}"
            )
        unknown = [k for k in data if k not in FAMILY_KEYS]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ValueError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {names} in '{SECTION}'; "
                f"supported keys: {', '.join(FAMILY_KEYS)}"
            )
        out = {}
        for key, value in data.items():
            if value is False or value is None:
                continue  # disabled
            out[key] = value
        return out

    @model_validator(mode="after")
    def _require_input_quant(self) -> "StaticQuantizedMLPConfig":
        enabled = [f for f in MLP_FAMILIES if getattr(self, f) is not None]
        if enabled and self.input_quant is None:
            raise ValueError(
                f"'input_quant' is required as soon as an MLP pattern is enabled ({', '.join(enabled)}): "
                "the fused MLPs take FP8 input produced by it; point it at the same repo, e.g. "
                "'input_quant': 'owner/static-fp8-mlp'"
            )
        return self

    def families(self) -> dict[str, KernelSpec]:
        return {f: getattr(self, f) for f in FAMILY_KEYS if getattr(self, f) is not None}


class FusionConfig(BaseModel):
    """The whole `fusion_config` mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    static_quantized_mlp: StaticQuantizedMLPConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if data is None:
            return {}
        if isinstance(data, FusionConfig):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(
                f"fusion_config must be a mapping such as {{'{SECTION}': {{...}}}}, got {type(data).__name__}"
            )
        unknown = [k for k in data if k != SECTION]
        if unknown:
            names = ", ".join(repr(k) for k in unknown)
            raise ValueError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {names} in fusion_config; supported keys: {SECTION}"
            )
        section = data.get(SECTION)
        if section is True:
            raise ValueError(f"fusion_config['{SECTION}'] = True is not supported: {_EXPLICIT}")
        if section is False or section is None:
            return {}
        return {SECTION: section}

    # ------------------------------------------------------------------ helpers

    @classmethod
    def parse(cls, data: Any) -> "FusionConfig":
        """Validate `data` (a mapping, None, or a FusionConfig), raising FusionConfigError."""
        if isinstance(data, FusionConfig):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc) from None

    @property
    def enabled(self) -> bool:
        return self.static_quantized_mlp is not None and bool(self.static_quantized_mlp.families())

    def families(self) -> dict[str, KernelSpec]:
        """Enabled entries, `input_quant` first."""
        return {} if self.static_quantized_mlp is None else self.static_quantized_mlp.families()


def _config_error(exc: ValidationError) -> FusionConfigError:
    problems = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("function-after", "function-before"))
        msg = str(err.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        if err.get("type") == "extra_forbidden":  # only reachable through exotic inputs
            msg = "unknown key"
        problems.append(f"{loc}: {msg}" if loc else msg)
    if len(problems) == 1:
        message = f"invalid fusion_config: {problems[0]}"
    else:
        message = "invalid fusion_config:\n" + "\n".join(f"  - {p}" for p in problems)
    return FusionConfigError(message, problems)


def parse_kernel_spec(data: Any, family: str | None = None) -> KernelSpec:
    """Validate one entry (`family` picks which overrides are allowed; None: all)."""
    cls = KernelSpec if family is None else SPEC_CLASSES[family]
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc) from None


def parse_fusion_config(data: Any) -> FusionConfig:
    return FusionConfig.parse(data)


def local_path_of(spec: KernelSpec) -> Path | None:
    return None if spec.path is None else Path(os.path.expanduser(spec.path))
