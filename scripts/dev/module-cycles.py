#!/usr/bin/env python3
"""Import circles between the top-level modules of each crate in the workspace.

A module is a file `src/NAME.rs` or a directory `src/NAME/`; module A uses module B when a
line of A (outside comments) names `crate::B`. Prints, per crate, each strongly connected
group of two or more modules (an import circle), or nothing for a crate without one.

Usage: scripts/dev/module-cycles.py [ROOT]   (ROOT defaults to the repository)
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
USE = re.compile(r"\bcrate::(\w+)")


def crates(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("target", ".git", "fuzz")]
        if "Cargo.toml" in filenames and os.path.isdir(os.path.join(dirpath, "src")):
            yield dirpath


def module_graph(crate):
    src = os.path.join(crate, "src")
    graph = {}
    for dirpath, _, filenames in os.walk(src):
        for f in filenames:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), src)
            top = rel.split(os.sep)[0]
            top = top[:-3] if top.endswith(".rs") else top
            if top in ("lib", "main"):
                continue
            with open(os.path.join(dirpath, f), encoding="utf-8") as fh:
                for line in fh:
                    code = line.split("//", 1)[0]
                    for used in USE.findall(code):
                        if used != top:
                            graph.setdefault(top, set()).add(used)
            graph.setdefault(top, set())
    return graph


def circles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


total = 0
for crate in sorted(crates(os.path.abspath(ROOT))):
    for group in circles(module_graph(crate)):
        total += 1
        print(f"{os.path.relpath(crate, os.path.abspath(ROOT))}: {' <-> '.join(group)}")
print(f"{total} import circle(s)")
