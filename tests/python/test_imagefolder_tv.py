#!/usr/bin/env python3
"""mae's ImageFolder source against torchvision.datasets.ImageFolder.

Builds a tree with tricky names (spaces, unicode, digits vs letters, upper case, dots, hidden
entries, nested and symlinked folders, loose files in the root, files of other types), then
compares torchvision's `classes` and `samples` (with `is_valid_file` = mae's extensions
.jpg .jpeg .png .bmp .webp, case-insensitive) with what `source_list_driver` prints for
mae_source_open: the class names, and "label<TAB>path" per sample. Exact equality, for the tree
root itself and for its parent (the main_pretrain.py data_path/train layout), each given with
and without a trailing slash.
Exit status 1 on any mismatch.
"""
import argparse
import os
import shutil
import subprocess
import sys

from torchvision.datasets import ImageFolder

EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

CLASSES = ["b class", "Ärger", "émigré", "10", "2", "a", "B", "a.b", "a-b", "a_b", "日本",
           ".dotdir", "zz", "x" * 60, "Z9"]
FILES = ["img 1.jpg", "img10.png", "img2.PNG", "ö.jpeg", "a.b.c.webp", ".hidden.jpg", "x.JPG",
         "noext", "photo.jpg.txt", "y.tif", "z.bmp", "ü.BMP", "1.jpg", "01.jpg", "😀.jpg",
         "ｚ.jpg", "A.Jpeg", "a.jpg", "_.png", "~.png", "-.png", " lead.jpg", "trail .png",
         "x.webp.jpg", ".jpg"]
NESTED = ["sub", "sub-2", "sub/x", "sub.d", "Sub", "sub/x/y z", "sub 3", "é"]


def write(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def build(work):
    if os.path.exists(work):
        shutil.rmtree(work)
    root = os.path.join(work, "data", "train")
    for i, cls in enumerate(CLASSES):
        # every class gets a different subset of the names, so orders interleave
        for j, name in enumerate(FILES):
            if (i + j) % 3 != 2 or cls == "zz":
                write(os.path.join(root, cls, name))
    for d in NESTED:
        for name in ("b.jpg", "A.png", "c.txt", "é.webp"):
            write(os.path.join(root, "zz", d, name))
    # a symlinked class folder and a symlinked folder inside a class (followed by both)
    for name in ("s1.jpg", "s0.PNG", "s.gif"):
        write(os.path.join(work, "outside", name))
    os.symlink(os.path.join(work, "outside"), os.path.join(root, "linked class"))
    os.symlink(os.path.join(work, "outside"), os.path.join(root, "a", "sub-link"))
    # loose files in the root: ignored by torchvision and mae
    write(os.path.join(root, "loose.jpg"))
    write(os.path.join(root, "README.txt"))
    write(os.path.join(work, "data", "val", "c", "v.jpg"))
    return root


def ours(driver, path):
    r = subprocess.run([driver, path], capture_output=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: driver on {path}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")
    lines = r.stdout.decode("utf-8", "surrogateescape").split("\n")
    nc = int(lines[0].split()[1])
    classes = lines[1:1 + nc]
    ns = int(lines[1 + nc].split()[1])
    samples = []
    for ln in lines[2 + nc:2 + nc + ns]:
        label, name = ln.split("\t", 1)
        samples.append((name, int(label)))
    return classes, samples


def compare(what, got, want):
    if got == want:
        print(f"ok   {what}: {len(want)} entries equal")
        return 0
    print(f"FAIL {what}: {len(got)} entries, torchvision {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            print(f"  first difference at {i}: mae {g!r}, torchvision {w!r}")
            break
    return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    a = ap.parse_args()
    root = build(a.workdir)
    tv = ImageFolder(root, loader=lambda p: p,
                     is_valid_file=lambda p: p.lower().endswith(EXTS))
    fails = 0
    parent = os.path.dirname(root)
    for path in (root, root + "/", parent, parent + "/"):
        classes, samples = ours(a.driver, path)
        fails += compare(f"classes ({path})", classes, tv.classes)
        fails += compare(f"samples ({path})", samples, [(p, t) for p, t in tv.samples])
    if fails:
        print("test_imagefolder_tv: FAILED")
        return 1
    shutil.rmtree(a.workdir)
    print("test_imagefolder_tv: all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
