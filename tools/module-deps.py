#!/usr/bin/env python3
"""Lists which modules of src/ each module imports (`crate::` and `super::` paths, in `use`
lines and in code, tests left out), and reports cycles. docs/ARCHITECTURE.md's module map
is its output.

    python3 tools/module-deps.py          # the map, as a Markdown table
    python3 tools/module-deps.py --check  # exit 1 if two modules import each other, or if
                                          # docs/ARCHITECTURE.md's map is not this one
A module is a top-level folder or file of src/, except in broker/ and web/, where each
sub-folder or file is a module of its own (broker/server, web/api, web/pages, ...).
"""
import os, re, sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
SPLIT = {"broker", "web"}
TEST_FILES = ("tests.rs", "suite.rs", "testing.rs")
TEST_DIRS = ("suite",)


def group(path):
    """A module path (list of names) -> the module it belongs to, or None (the crate root)."""
    if not path:
        return None
    if path[0] in SPLIT and len(path) >= 2 and module_exists(path[0] + "/" + path[1]):
        return path[0] + "/" + path[1]
    return path[0]


def file_path(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def strip_tests(text):
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


PATH = re.compile(r"\b(crate|super(?:::super)*)::((?:[A-Za-z_][A-Za-z0-9_]*::)*(?:\{[^;]*?\}|[A-Za-z_][A-Za-z0-9_]*))")


def expand(prefix, body):
    """`a::{b, c::d}` -> [[a, b], [a, c, d]] (names only; enough for module paths)."""
    if "{" not in body:
        return [body.split("::")]
    head, _, rest = body.partition("{")
    head = [p for p in head.split("::") if p]
    inner = rest.rsplit("}", 1)[0]
    out, depth, cur = [], 0, ""
    for ch in inner + ",":
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "," and depth == 0:
            if cur.strip():
                for p in expand(prefix, cur.strip()):
                    out.append(head + p)
            cur = ""
        else:
            cur += ch
    return out or [head]


def deps():
    graph = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs") or f in TEST_FILES or f.endswith("_tests.rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), SRC)
            if any(part in TEST_DIRS for part in rel.split(os.sep)[:-1]):
                continue
            here = file_path(rel)
            if here in (["main"], ["lib"]):
                continue
            mod = group(here)
            found = graph.setdefault(mod, set())
            text = strip_tests(open(os.path.join(root, f), encoding="utf-8").read())
            for m in PATH.finditer(text):
                kind, body = m.group(1), m.group(2)
                for p in expand(kind, body):
                    if kind == "crate":
                        full = p
                    else:
                        ups = kind.count("super")
                        # A file `x.rs` is module x: `super` is its folder's module.
                        full = here[: len(here) - ups] + p
                    target = group(full)
                    if target and target != mod and module_exists(target):
                        found.add(target)
    return graph


def module_exists(target):
    base = os.path.join(SRC, *target.split("/"))
    return os.path.isdir(base) or os.path.exists(base + ".rs")


def cycles(graph):
    return [(a, b) for a in sorted(graph) for b in sorted(graph[a]) if a < b and a in graph.get(b, ())]


DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "ARCHITECTURE.md")
BEGIN, END = "<!-- module-deps: begin -->", "<!-- module-deps: end -->"


def table(graph):
    lines = ["| module | imports |", "|---|---|"]
    for mod in sorted(graph):
        lines.append(f"| {mod} | {', '.join(sorted(graph[mod])) or '(nothing)'} |")
    return "\n".join(lines)


def main():
    graph = deps()
    if "--check" in sys.argv:
        found = cycles(graph)
        for a, b in found:
            print(f"cycle: {a} <-> {b}")
        doc = open(DOC, encoding="utf-8").read()
        start, end = doc.find(BEGIN), doc.find(END)
        current = doc[start + len(BEGIN):end].strip() if 0 <= start < end else None
        stale = current != table(graph)
        if stale:
            print("docs/ARCHITECTURE.md's module map is not the modules' imports: "
                  "run python3 tools/module-deps.py --write")
        sys.exit(1 if found or stale else 0)
    if "--write" in sys.argv:
        doc = open(DOC, encoding="utf-8").read()
        start, end = doc.find(BEGIN), doc.find(END)
        if not 0 <= start < end:
            sys.exit(f"no {BEGIN} ... {END} in docs/ARCHITECTURE.md")
        doc = doc[: start + len(BEGIN)] + "\n" + table(graph) + "\n" + doc[end:]
        open(DOC, "w", encoding="utf-8").write(doc)
        return
    print(table(graph))


if __name__ == "__main__":
    main()
