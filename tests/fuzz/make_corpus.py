#!/usr/bin/env python3
"""Writes the fuzz targets' seeds (tests/fuzz/corpus/<target>/seed-*) from real inputs that
the real binaries make: a tiny tree packed and published twice (package.json, .zst, deltas,
frames), a FEC's generations and their signatures, a snapshot of its persistent data.
Inputs that once found a bug (regress-*) are left alone. Needs zstd and tar.

Usage: tests/fuzz/make_corpus.py WHARF WHARF_AGENT KEY.key
  KEY.key signs the generations; its public half must be the one in signature.cc.
"""
import base64
import glob
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

SEP = b"\n@@@@\n"
CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def run(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, **kw).stdout


def unzstd(data):
    return run("zstd", "-dc", input=data)


def seed(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ("seed-" + name)).write_bytes(data)


def main():
    wharf, agent, key = (os.path.abspath(a) for a in sys.argv[1:4])
    for folder in CORPUS.glob("*"):
        for old in folder.glob("seed-*"):
            old.unlink()
    work = pathlib.Path(tempfile.mkdtemp(prefix="wharf-corpus-"))
    try:
        make(work, wharf, agent, key)
    finally:
        shutil.rmtree(work)


def make(w, wharf, agent, key):
    tree, out, store = w / "tree", w / "out", w / "store"
    for d in ("bin", "etc", "empty"):
        (tree / d).mkdir(parents=True)
    (tree / "bin/app").write_text("#!/bin/sh\necho app\n")
    os.chmod(tree / "bin/app", 0o755)
    (tree / "etc/app.conf").write_text("level = 3\n")
    os.symlink("app", tree / "bin/app2")
    services_toml = (b'[demo]\ncommand = "bin/app"\nargs = ["--port", "5000"]\n'
                     b'env = { LEVEL = "3" }\nrestart = "on-failure"\ngrace = 5\n')
    (tree / "services.toml").write_bytes(services_toml)
    out.mkdir()
    pack = [wharf, "pack", tree, "--name", "demo", "--prefix", "/opt/demo", "-o", out,
            "--frame-size", "4096", "--level", "3"]
    run(*pack, "--version", "1.0")
    (tree / "etc/app.conf").write_text("level = 3\nmore\n")
    (tree / "etc/table.txt").write_text("".join(f"{i} {i * i}\n" for i in range(600)))
    run(*pack, "--version", "1.1")
    conf = w / "conf"
    (conf / "etc").mkdir(parents=True)
    (conf / "etc/instance.xml").write_text("<instance/>\n")
    run(wharf, "pack", conf, "--name", "demo-conf", "--version", "1", "--prefix", "/opt/demo-conf",
        "-o", out, "--configuration", "--matches", "demo@1.1")
    for archive in ("demo-1.0", "demo-1.1", "demo-conf-1"):
        run(wharf, "publish", out / (archive + ".tar.zst"), "--store", store)
    run(wharf, "assign", "fec01", "demo@1.1", "demo-conf@1", "--store", store, "--key", key)
    run(wharf, "persist", "fec01", "/var/lib/demo", "--store", store, "--key", key)
    run(wharf, "service", "set", "fec01", "demo", "env.MODE=test", "grace=5", "--store", store, "--key", key)
    (w / "10-boot").write_text("#!/bin/sh\necho boot\n")
    run(wharf, "init", "add", "fec01", w / "10-boot", "--timeout", "30", "--on-failure", "stop",
        "--store", store, "--key", key)

    for version in ("1.0", "1.1"):
        folder = store / "software/demo" / version
        index_json = (folder / "package.json").read_bytes()
        index = json.loads(index_json)
        seed("package_index", "demo-" + version, index_json)
        seed("package_index_zst", "demo-" + version, (folder / "package.json.zst").read_bytes())
        archive = (folder / index["archive"]).read_bytes()
        raws = []
        for n, f in enumerate(index["frames"]):
            frame = archive[f["offset"]:f["offset"] + f["size"]]
            raw = unzstd(frame)
            raws.append(raw)
            seed("zstd_frame", f"demo-{version}-{n}", frame)
            seed("tar_walk", f"demo-{version}-{n}", index_json + SEP + raw + SEP + bytes([n, 0]))
        seed("archive", "demo-" + version, SEP.join([index_json] + raws))
        seed("archive", "demo-" + version + "-compressed", SEP.join([index_json] + [
            archive[f["offset"]:f["offset"] + f["size"]] for f in index["frames"]]))
        services = index.get("services", [])
    conf_json = (store / "configuration/demo-conf/1/package.json").read_bytes()
    seed("package_index", "demo-conf-1", conf_json)

    deltas_json = (store / "software/demo/1.1/deltas.json").read_bytes()
    seed("deltas_json", "demo-1.1", deltas_json)
    base = b"level = 3\n"
    for n, d in enumerate(json.loads(deltas_json)["deltas"]):
        if "data" not in d or d["path"] == "package.json":
            continue
        patch = base64.b64decode(d["data"])
        seed("delta", str(n), (base if d["base_sha256"] else b"") + SEP + patch + SEP + b"16")

    generations = sorted(glob.glob(str(store / "fecs/fec01/generations/*.json")))
    for g in generations:
        data = pathlib.Path(g).read_bytes()
        signature = pathlib.Path(g + ".sig").read_bytes()
        name = pathlib.Path(g).stem
        seed("generation", name, data)
        seed("signature", name, signature + SEP + data)
    seed("signature", "with-pub", signature + SEP + data + SEP + pathlib.Path(key[:-4] + ".pub").read_bytes())
    last = json.loads(data)

    # The agent syncs, then snapshots its persistent data into the store (file://).
    root = w / "root"
    (root / "var/lib/demo/sub").mkdir(parents=True)
    (root / "var/lib/demo/state.db").write_text("counter = 42\n")
    (root / "var/lib/demo/sub/notes").write_text("n\n")
    os.symlink("../state.db", root / "var/lib/demo/sub/link")
    common = ["--root", root, "--store", "file://" + str(store), "--fec", "fec01"]
    run(agent, "sync", *common, "--trust", key[:-4] + ".pub")
    run(agent, "snapshot", *common)
    data_dir = store / "fecs/fec01/data"
    snapshot = next(data_dir.glob("*.tar.zst"))
    seed("snapshot", "agent", snapshot.read_bytes())
    seed("snapshot", "agent-tar", unzstd(snapshot.read_bytes()))
    seed("snapshot_record", "latest", (data_dir / "latest.json").read_bytes())

    seed("services", "demo", services_toml + SEP + json.dumps(services).encode() + SEP +
         json.dumps(last.get("services", {})).encode() + SEP + b"env.PORT=5064\ngrace=3\ndev=true")
    seed("services", "spec", b"" + SEP + b"[]" + SEP + b"{}" + SEP + b"ioc=bin/demoApp 'st cmd' \"x y\"")
    seed("agent_toml", "full", b'store = ["http://wharf:8080", "file:///srv/wharf,http://mirror"]\n'
         b'fec = "fec01"\ntrust = ["/etc/wharf/release.pub"]\nkeep = 3\nserver = "http://wharf:8080"\n'
         b'token_file = "/etc/wharf/token"\nsupervisor = "builtin"\nconsole_group = "wharf"\n'
         b'keep_snapshots = 5\n')
    seed("agent_toml", "one-store", b'store = "http://wharf:8080"\nfec = "fec02"\n')
    for n, (size, header) in enumerate([(b"1000", b"bytes=0-99"), (b"1000", b"bytes=0-99,200-299,-50"),
                                        (b"4096", b"bytes=100-"), (b"10", b"bytes=5-2")]):
        seed("range", str(n), size + SEP + header)
    for n, text in enumerate([b"/software/demo/1.1/demo%2D1.1.tar.zst", b"2026-12-03T12:00:00Z",
                              b"Thu, 03 Dec 2026 12:00:00 GMT", b"30d", b"IyEvYmluL3NoCmVjaG8gYm9vdAo=",
                              b"opt/demo/bin/app2\n@@@@\n../etc/app.conf\n@@@@\n/opt/demo"]):
        seed("text", str(n), text)


if __name__ == "__main__":
    main()
