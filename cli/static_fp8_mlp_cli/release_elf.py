"""Just enough ELF reading for `validate`: dynamic dependencies and string literals.

Why our own reader instead of `readelf -d` or `pyelftools`: `publish` runs wherever a
release is made (a laptop, a CI runner), and the only facts we need are the
`DT_NEEDED`/`DT_RPATH`/`DT_RUNPATH` entries of one shared object plus the op schema
literals in its read-only data. Reading the dynamic section of a 64/32-bit ELF file is
a few dozen lines of `struct`, so it is not worth a binutils requirement (absent from
slim images and macOS) or a new dependency. `kernel-abi-check` (already a dependency)
does the symbol-version work.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

_SHT_DYNAMIC = 6
_DT_NULL = 0
_DT_NEEDED = 1
_DT_RPATH = 15
_DT_SONAME = 14
_DT_RUNPATH = 29


class ElfError(ValueError):
    """The file is not an ELF shared object we can read."""


@dataclass
class DynamicInfo:
    needed: list[str] = field(default_factory=list)
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    soname: str | None = None
    machine: int = 0
    elf_class: int = 0


def read_dynamic(path: str | Path) -> DynamicInfo:
    """Return the dynamic-section entries (DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME)."""
    data = Path(path).read_bytes()
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError(f"{path}: not an ELF file")
    elf_class, data_enc = data[4], data[5]
    if elf_class not in (1, 2) or data_enc not in (1, 2):
        raise ElfError(f"{path}: unsupported ELF class/encoding ({elf_class}, {data_enc})")
    end = "<" if data_enc == 1 else ">"
    is64 = elf_class == 2

    if is64:
        (e_type, e_machine, _v, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize,
         _phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(end + "HHIQQQIHHHHHH", data, 16)
        sh_fmt, dyn_fmt = end + "IIQQQQIIQQ", end + "qQ"
    else:
        (e_type, e_machine, _v, _entry, _phoff, e_shoff, _flags, _ehsize, _phentsize,
         _phnum, e_shentsize, e_shnum, e_shstrndx) = struct.unpack_from(end + "HHIIIIIHHHHHH", data, 16)
        sh_fmt, dyn_fmt = end + "IIIIIIIIII", end + "iI"
    del e_type, e_shstrndx

    info = DynamicInfo(machine=e_machine, elf_class=elf_class)
    if e_shoff == 0 or e_shnum == 0:
        raise ElfError(f"{path}: no section headers")

    sections = []
    for i in range(e_shnum):
        off = e_shoff + i * e_shentsize
        if off + struct.calcsize(sh_fmt) > len(data):
            raise ElfError(f"{path}: truncated section header table")
        (_name, sh_type, _flags, _addr, sh_offset, sh_size, sh_link, _info, _align,
         sh_entsize) = struct.unpack_from(sh_fmt, data, off)
        sections.append((sh_type, sh_offset, sh_size, sh_link, sh_entsize))

    dyn = [s for s in sections if s[0] == _SHT_DYNAMIC]
    if not dyn:
        return info  # statically linked object: no dependencies at all
    _t, d_off, d_size, d_link, d_entsize = dyn[0]
    if d_link >= len(sections):
        raise ElfError(f"{path}: bad string table link in .dynamic")
    _st, str_off, str_size, _l, _e = sections[d_link]
    strtab = data[str_off:str_off + str_size]

    def string_at(index: int) -> str:
        stop = strtab.find(b"\0", index)
        if stop < 0:
            stop = len(strtab)
        return strtab[index:stop].decode("utf-8", "replace")

    entsize = d_entsize or struct.calcsize(dyn_fmt)
    for off in range(d_off, d_off + d_size, entsize):
        tag, val = struct.unpack_from(dyn_fmt, data, off)
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            info.needed.append(string_at(val))
        elif tag == _DT_RPATH:
            info.rpath.extend(p for p in string_at(val).split(":") if p)
        elif tag == _DT_RUNPATH:
            info.runpath.extend(p for p in string_at(val).split(":") if p)
        elif tag == _DT_SONAME:
            info.soname = string_at(val)
    return info


# An op schema as `TORCH_LIBRARY`'s `m.def("name(Tensor! out, ...) -> ()")` stores it:
# an optional `namespace::`, an identifier, an optional `.overload`, a parenthesised
# argument list and a return clause, as one NUL-terminated literal.
_SCHEMA_RE = re.compile(
    rb"(?:(?<=\x00)|^)"
    rb"((?:[A-Za-z_][A-Za-z0-9_]*::)?([A-Za-z_][A-Za-z0-9_]*)(?:\.[A-Za-z0-9_]+)?"
    rb"\([\x20-\x7e]*?\)\s*->\s*[\x20-\x7e]*?)\x00"
)


def schema_literals(path: str | Path) -> dict[str, list[str]]:
    """Op schema string literals found in a shared object, keyed by op name.

    Finds every NUL-terminated printable string shaped like an op schema. Schemas that
    a build assembles at run time (not as one literal) are invisible here; the import
    check on the variant that matches the local torch covers those.
    """
    data = Path(path).read_bytes()
    found: dict[str, list[str]] = {}
    for m in _SCHEMA_RE.finditer(data):
        text = m.group(1).decode("ascii")
        found.setdefault(m.group(2).decode("ascii"), []).append(text)
    return found
