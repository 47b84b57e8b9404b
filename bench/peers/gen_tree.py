#!/usr/bin/env python3
"""Workload generator for bench/peers: an EPICS/FESA-like install tree of real ELF files
of this machine (v1) and a small release change of it (v2).

Usage: gen_tree.py SIZE_MB OUT_DIR      -> OUT_DIR/tree (v1) and OUT_DIR/tree2 (v2)

v1 follows bench/sync.sh: files > 4 kB of /usr/bin, /usr/lib/x86_64-linux-gnu, /usr/libexec
in sorted order until SIZE_MB, libraries (*.so*) under lib/, the rest under bin/, each
renamed NAME.N; plus 500 small configs db/rN.db.
v2, a realistic small release:
  - 10 binaries rebuilt: 6 with 64 bytes changed in the middle (a one-line fix),
    4 with 4 kB appended (a new function / a longer .rodata)
  - 3 binaries added (from /usr/sbin, which v1 never takes files from)
  - 3 binaries removed
  - 8 configs edited (a field changed in place)
Deterministic for a given machine and SIZE_MB.
"""
import os, random, shutil, stat, sys


def main():
    size_mb, out = int(sys.argv[1]), sys.argv[2]
    tree, tree2 = os.path.join(out, "tree"), os.path.join(out, "tree2")
    for d in ("bin", "lib", "db"):
        os.makedirs(os.path.join(tree, d))
    cands = []
    for top in ("/usr/lib/x86_64-linux-gnu", "/usr/bin", "/usr/libexec"):
        for base, _, files in os.walk(top):
            for f in files:
                p = os.path.join(base, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size > 4096:
                    cands.append((p, st.st_size))
    cands.sort()
    budget, used, n = size_mb * 1000000, 0, 0
    for p, s in cands:
        if used + s > budget:
            continue
        dest = "lib" if ".so" in os.path.basename(p) else "bin"
        try:
            shutil.copy(p, os.path.join(tree, dest, f"{os.path.basename(p)}.{n}"))
        except OSError:
            continue
        used += s
        n += 1
        if used >= budget - 2000000:
            break
    for i in range(1, 501):
        with open(os.path.join(tree, "db", f"r{i}.db"), "w") as f:
            f.write(f'record(ai, "BENCH:{i}") {{ field(SCAN, "1 second") }}\n')

    # v1 was built a day ago; what v2 rebuilds or edits gets a new mtime (rsync's quick
    # check compares size and mtime; the same second would hide a same-size patch)
    old = 1790000000  # 2026-09-21
    for base, dirs, files in os.walk(tree):
        for f in files + dirs:
            os.utime(os.path.join(base, f), (old, old))
    os.utime(tree, (old, old))

    # v2
    shutil.copytree(tree, tree2, symlinks=True)  # copy2: mtimes kept, as `cp -a`
    big = sorted(
        os.path.join(tree2, d, f)
        for d in ("bin", "lib")
        for f in os.listdir(os.path.join(tree2, d))
        if os.path.getsize(os.path.join(tree2, d, f)) > 1000000
    )
    if len(big) < 13:
        big = sorted(
            os.path.join(tree2, d, f)
            for d in ("bin", "lib")
            for f in os.listdir(os.path.join(tree2, d))
            if os.path.getsize(os.path.join(tree2, d, f)) > 100000
        )
    step = max(1, len(big) // 13)
    picks = big[::step][:13]
    rebuilt, removed = picks[:10], picks[10:13]
    rnd = random.Random(6)
    for k, p in enumerate(rebuilt):
        data = bytearray(open(p, "rb").read())
        if k < 6:
            mid = len(data) // 2
            data[mid:mid + 64] = bytes((b + 1) % 256 for b in data[mid:mid + 64])
        else:
            data += bytes(rnd.getrandbits(8) for _ in range(4096))
        mode = os.stat(p).st_mode
        os.unlink(p)  # a rebuild writes a new file
        with open(p, "wb") as f:
            f.write(bytes(data))
        os.chmod(p, stat.S_IMODE(mode))
    for p in removed:
        os.unlink(p)
    sbin = sorted(
        os.path.join("/usr/sbin", f)
        for f in os.listdir("/usr/sbin")
        if os.path.isfile(os.path.join("/usr/sbin", f))
        and not os.path.islink(os.path.join("/usr/sbin", f))
        and os.path.getsize(os.path.join("/usr/sbin", f)) > 50000
    )
    added = [sbin[i * len(sbin) // 3] for i in range(3)]
    for i, p in enumerate(added):
        shutil.copy(p, os.path.join(tree2, "bin", f"{os.path.basename(p)}.new{i}"))
    for i in range(1, 9):
        p = os.path.join(tree2, "db", f"r{i * 7}.db")
        with open(p, "w") as f:
            f.write(f'record(ai, "BENCH:{i * 7}") {{ field(SCAN, ".5 second") field(PREC, "3") }}\n')

    def size(d):
        return sum(os.path.getsize(os.path.join(b, f)) for b, _, fs in os.walk(d) for f in fs)

    print(f"tree v1: {n} binaries + 500 configs, {size(tree)/1e6:.1f} MB")
    print(f"tree v2: {len(rebuilt)} binaries rebuilt (6 patched 64 B, 4 +4 kB), "
          f"{len(added)} added ({', '.join(os.path.basename(a) for a in added)}), "
          f"{len(removed)} removed, 8 configs edited; {size(tree2)/1e6:.1f} MB")


if __name__ == "__main__":
    main()
